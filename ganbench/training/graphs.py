"""A whole training step replayed as one CUDA graph, or run eagerly; the same step either way.

At the paper's batch size (128) a DCGAN step on an H100/H200 is launch-bound: a few
hundred small kernels, each waiting for Python and the launch path, take longer than the
arithmetic. Capturing the model's whole ``train_step`` (every D and G update: forwards,
backwards, a gradient penalty's double backward, capturable Adam, a GradScaler's
unscale and update) plus the statistics' in-place add into one CUDA graph turns the
step into one launch. Nothing here knows what the step does: any family whose step is
graph-safe (``GanModel.graph_safe_step``: no host sync, no data-dependent Python
control flow, randomness from registered generators) is captured the same way.

How (torch.cuda.graph's "whole network capture" recipe):

- the first ``warmup`` steps run eagerly on a side stream (they are real training
  steps): lazy initialisation (Adam's state, cuBLAS workspaces, the scaler's scale)
  happens outside the capture;
- then the step is captured once on a static input buffer; every later step copies its
  batch into that buffer and replays the graph. Capturing does not execute, so the step
  that captures replays right after, and no step is lost or done twice;
- randomness: latents and the penalty's interpolation weights come from the default
  CUDA generator, which every capture registers; a model's own generators are
  registered too (``GanModel.random_generators``). Each replay advances the generator's
  offset by what an eager step would, so a captured run draws what an eager one does,
  and a checkpoint's random state resumes it exactly;
- a new input shape (another batch size) captures again; a resumed run captures in its
  own process after its state is loaded (the optimizer's state tensors are new then);
- a capture that fails (a step that is not graph-safe after all) is reported once with
  its reason and the run continues eagerly.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from typing import Any

import torch

from ganbench.plugins.interfaces import GanModel, Speed
from ganbench.training.statistics import StepStatistics

#: Eager steps before a capture. torch's recipe warms up 3 iterations on a side stream
#: (11 for DistributedDataParallel, which is not captured here).
WARMUP_STEPS = 3


class EagerStep:
    """The model's step as written; its statistics are summed on the device."""

    captured = False

    def __init__(self, model: GanModel, statistics: StepStatistics) -> None:
        self.model, self.statistics = model, statistics

    def __call__(self, real: torch.Tensor, labels: torch.Tensor | None = None) -> None:
        # an unconditional plugin's step may not take labels at all
        step = (
            self.model.train_step(real) if labels is None else self.model.train_step(real, labels)
        )
        self.statistics.add(step)
        self.statistics.counted()


class CapturedStep:
    """The model's step (and its statistics' add) as one CUDA graph, replayed per step."""

    def __init__(
        self,
        model: GanModel,
        statistics: StepStatistics,
        *,
        warmup: int = WARMUP_STEPS,
        on_fallback: Callable[[str], None] = lambda reason: None,
    ) -> None:
        self.model, self.statistics = model, statistics
        self.on_fallback = on_fallback
        self._eager = EagerStep(model, statistics)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static_real: torch.Tensor | None = None
        self.static_labels: torch.Tensor | None = None
        #: Why capture was given up (None while capturing works).
        self.failed: str | None = None
        #: Captures made so far (a new batch shape captures again).
        self.captures = 0
        #: (shape, dtype, strides) of the batches the graph (or its warm-up) is for.
        self._input: tuple | None = None
        self._eager_left = warmup
        self._side = torch.cuda.Stream()

    @property
    def captured(self) -> bool:
        return self.graph is not None

    def __call__(self, real: torch.Tensor, labels: torch.Tensor | None = None) -> None:
        if self.failed is not None:
            self._eager(real, labels)
            return
        key = (real.shape, real.dtype, real.stride(), labels is None)
        if key != self._input:  # the first batch, or another shape: warm up, capture
            self.graph, self._input = None, key
            self._eager_left = max(self._eager_left, 1)
        if self.graph is None:
            if self._eager_left > 0:
                self._eager_left -= 1
                self._warm(real, labels)
                return
            if not self._capture(real, labels):
                self._eager(real, labels)
                return
        assert self.static_real is not None and self.graph is not None
        self.static_real.copy_(real)
        if labels is not None:
            assert self.static_labels is not None
            self.static_labels.copy_(labels)
        self.graph.replay()
        self.statistics.counted()

    def _warm(self, real: torch.Tensor, labels: torch.Tensor | None) -> None:
        """An eager step on a side stream, ordered after the default stream's work."""
        current = torch.cuda.current_stream()
        self._side.wait_stream(current)
        with torch.cuda.stream(self._side):
            self._eager(real, labels)
        current.wait_stream(self._side)

    def _capture(self, real: torch.Tensor, labels: torch.Tensor | None) -> bool:
        """Record the step on static buffers shaped like ``real`` (and ``labels``); False
        (and eager from now on) if the step cannot be captured. Capturing runs nothing:
        the caller replays the graph for this step."""
        static = torch.empty_like(real)
        static_labels = None if labels is None else torch.empty_like(labels)
        graph = torch.cuda.CUDAGraph()
        for generator in self.model.random_generators():
            graph.register_generator_state(generator)
        torch.cuda.synchronize()
        try:
            # thread_local: other threads (the streamed batches' pinning thread, the
            # tracking writer) may call CUDA while this one captures
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                if static_labels is None:
                    self.statistics.add(self.model.train_step(static))
                else:
                    self.statistics.add(self.model.train_step(static, static_labels))
        except Exception as exc:  # the step is not graph-safe: say why, train eagerly
            self.failed = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            with contextlib.suppress(Exception):
                torch.cuda.synchronize()
            release_generators(self.model, real.device)
            self.on_fallback(self.failed)
            return False
        self.graph, self.static_real, self.static_labels = graph, static, static_labels
        self.captures += 1
        return True


def release_generators(model: GanModel, device: torch.device) -> None:
    """Free the generators a failed capture left registered to it.

    A capture that raises never reaches ``capture_end``'s epilogue, so the generators keep
    their capture state and the next eager ``torch.rand`` fails with "Offset increment
    outside graph capture encountered unexpectedly" (seen on the lent H200, torch 2.11).
    Each gets a fresh state with the same seed and offset instead (``clone_state`` does not
    copy a capture's bookkeeping; ``graphsafe_set_state`` swaps it in).
    """
    index = device.index if device.index is not None else torch.cuda.current_device()
    for generator in (torch.cuda.default_generators[index], *model.random_generators()):
        if hasattr(generator, "graphsafe_set_state"):  # torch >= 2.4
            generator.graphsafe_set_state(generator.clone_state())


def graphs_unavailable(model: GanModel, distributed: bool, changing_lr: bool = False) -> str | None:
    """Why this model's step is not captured in this run (None: it is)."""
    if changing_lr:
        return (
            "lr_decay changes the learning rates at every step, and a captured Adam step"
            " keeps the rate it was captured with"
        )
    if distributed:
        return (
            "distributed runs are not captured: DistributedDataParallel needs its own"
            " capture recipe (static buckets, 11 warm-up steps), not implemented here"
        )
    if not type(model).graph_safe_step:
        return (
            f"{type(model).__name__} does not declare its step graph-safe"
            " (GanModel.graph_safe_step)"
        )
    return None


def speed_for(speed: Speed, model: GanModel, distributed: bool, changing_lr: bool = False) -> Speed:
    """``speed`` with CUDA graphs off, and why, where this model or run cannot have them."""
    if not speed.graphs:
        return speed
    reason = graphs_unavailable(model, distributed, changing_lr)
    return speed if reason is None else dataclasses.replace(speed, graphs=False, graphs_off=reason)


def reported_fallback(tracker: Any, say: Callable[[str], None]) -> Callable[[str], None]:
    """What a failed capture does in a run: one note, one tag; the run goes on eagerly."""

    def report(reason: str) -> None:
        say(f"note: the training step could not be captured as a CUDA graph ({reason}); eager")
        tracker.set_tags({"ganbench.graphs_fallback": reason[:5000]})

    return report


def make_step(
    model: GanModel,
    statistics: StepStatistics,
    graphs: bool,
    on_fallback: Callable[[str], None] = lambda reason: None,
) -> EagerStep | CapturedStep:
    """The callable that runs one training step: captured when ``graphs``, else eager."""
    if graphs:
        return CapturedStep(model, statistics, on_fallback=on_fallback)
    return EagerStep(model, statistics)
