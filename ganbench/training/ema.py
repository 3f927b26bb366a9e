"""An exponential moving average of the generator's weights, for sampling and scoring.

Averaging G's weights over training (Yazici et al. 2019, "The Unusual Effectiveness of
Averaging in GAN Training", arXiv 1806.04498) damps the oscillation of the adversarial game
and usually lowers FID; BigGAN and StudioGAN sample from such an average. It is a core
mechanism so that every plugin's generator gets it the same way: the runner keeps one
:class:`GeneratorEMA` beside the model, calls :meth:`GeneratorEMA.update` after each
training step, samples from :attr:`GeneratorEMA.module` and checkpoints its state dict.

Reference code followed:

* the start step: ajbrock/BigGAN-PyTorch utils.py ``class ema`` (commit 98459431, lines
  614-640): the target starts as a copy of the source, and while ``itr < start_itr`` an
  update copies the weights (decay 0); from ``start_itr`` on ``decay*avg + (1-decay)*w``.
  ``itr`` there is the number of steps done including the current one (train.py line 173
  increments it before the step, train_fns.py line 85 updates with it): ours too.
* the buffers: StyleGAN2-ADA's training loop copies G's buffers into G_ema at every update
  rather than averaging them (mit-han-lab/data-efficient-gans
  DiffAugment-stylegan2-pytorch/training/training_loop.py lines 302-305, the
  stylegan2-ada-pytorch loop; also PyTorch-StudioGAN src/utils/ema.py ``EmaStylegan2``,
  lines 66-69). We do the same for every generator.

Deviations: BigGAN-PyTorch averages the whole state dict, so batch-norm running statistics
and spectral-norm ``u`` vectors are averaged as well (StudioGAN's ``Ema`` likewise, except
``num_batches_tracked``). We copy them, as StyleGAN2-ADA does: a buffer is a running
estimate, not a trained weight, and the copy keeps integer buffers exact. Batch-norm
statistics are thus the live G's, estimated for its weights rather than the average's
(BigGAN-PyTorch's optional "standing stats" re-estimate them; not done here). The update is
one ``torch._foreach_lerp_`` over all parameters (as StudioGAN's per-tensor ``lerp``),
with no host synchronisation, so it works for parameters on a GPU.

Spectral norm: both ``torch.nn.utils.spectral_norm`` and the parametrization average the
unnormalised weight (``weight_orig`` / ``parametrizations.weight.original``), as BigGAN's
state-dict average does, and copy ``u``/``v``; in eval mode the copy normalises the average
with them and runs no power iteration.
"""

from __future__ import annotations

import copy
from typing import Any

import torch


def plain_module(module: torch.nn.Module) -> torch.nn.Module:
    """The module whose parameters ``module`` trains: itself, or what a ``torch.compile``
    wrapper (``_orig_mod``) or DistributedDataParallel (``.module``) holds."""
    while True:
        if isinstance(module, torch.nn.parallel.DistributedDataParallel):
            module = module.module
        elif isinstance(getattr(module, "_orig_mod", None), torch.nn.Module):
            module = module._orig_mod  # torch._dynamo's OptimizedModule
        else:
            return module


class GeneratorEMA:
    """An exponential moving average of a generator's parameters.

    ``generator`` should be the plain module (not a ``torch.compile`` or DDP wrapper); a
    wrapper is unwrapped with :func:`plain_module`, since both share the plain module's
    parameters. :attr:`module` is a deep copy of it, in eval mode, with ``requires_grad``
    off, holding the average: sample with ``ema.module(z)`` (or ``ema.module(z, y)``).

    :meth:`update` after every training step ``step`` (1 after the first step): before
    ``start`` the average is a copy of the parameters, from ``start`` on
    ``avg = decay * avg + (1 - decay) * param``. Buffers are copied at every update.
    In a distributed run every rank holds the same parameters, so every rank's average
    is the same; rank 0 saves it. The branch on ``step < start`` runs on the host: call
    :meth:`update` outside a captured CUDA graph (it is one fused kernel per tensor list).
    """

    def __init__(self, generator: torch.nn.Module, decay: float, start: int = 0) -> None:
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"EMA decay must be in [0, 1]; got {decay}")
        if start < 0:
            raise ValueError(f"EMA start must be a step >= 0; got {start}")
        self.decay = float(decay)
        self.start = int(start)
        #: The step of the last :meth:`update` (0 before the first).
        self.step = 0
        self.module = copy.deepcopy(plain_module(generator))
        self.module.eval().requires_grad_(False)
        for parameter in self.module.parameters():
            parameter.grad = None
        self._averages = list(self.module.parameters())
        self._buffers = list(self.module.buffers())

    @property
    def started(self) -> bool:
        """Whether the last update averaged (``step >= start``) rather than copied."""
        return self.step > 0 and self.step >= self.start

    def _sources(self, generator: torch.nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        source = plain_module(generator)
        parameters = [p.detach() for p in source.parameters()]
        buffers = list(source.buffers())
        if len(parameters) != len(self._averages) or len(buffers) != len(self._buffers):
            raise ValueError(
                f"EMA of a generator with {len(self._averages)} parameters and"
                f" {len(self._buffers)} buffers updated from one with {len(parameters)}"
                f" and {len(buffers)}: pass the same generator it was built from"
            )
        return parameters, buffers

    @torch.no_grad()
    def update(self, generator: torch.nn.Module, step: int | None = None) -> None:
        """Fold ``generator``'s current parameters into the average after training step
        ``step`` (default: the last update's step + 1) and copy its buffers."""
        step = self.step + 1 if step is None else int(step)
        parameters, buffers = self._sources(generator)
        if step < self.start:
            torch._foreach_copy_(self._averages, parameters)
        else:
            # lerp(avg, param, 1 - decay) = avg + (1 - decay) * (param - avg)
            torch._foreach_lerp_(self._averages, parameters, 1.0 - self.decay)
        if buffers:
            torch._foreach_copy_(self._buffers, buffers)
        self.step = step

    @torch.no_grad()
    def reset(self, generator: torch.nn.Module) -> None:
        """Make the average a copy of ``generator`` again (step count kept)."""
        parameters, buffers = self._sources(generator)
        torch._foreach_copy_(self._averages, parameters)
        if buffers:
            torch._foreach_copy_(self._buffers, buffers)

    def state_dict(self) -> dict[str, Any]:
        """The average and its step count, in types ``torch.load(weights_only=True)``
        reads. ``decay`` and ``start`` are stored for the record; on load the
        constructor's (the run's configuration) are used."""
        return {
            "module": self.module.state_dict(),
            "step": self.step,
            "decay": self.decay,
            "start": self.start,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s average (copied in place, bit for bit) and step."""
        self.module.load_state_dict(state["module"])
        self.step = int(state["step"])
