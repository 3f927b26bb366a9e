"""Regularisers a training step adds to its discriminator's loss, for any plugin.

:func:`gradient_penalty` is Gulrajani et al.'s (arXiv 1704.00028, Algorithm 1): it works on
the fast path a model's step runs on (autocast in bf16 or fp16 with a gradient scaler,
channels_last, fused Adam, torch.compile) and in a data-parallel run, and draws its
interpolation weights from torch's global generator, which the runner saves in every
checkpoint (``ganbench.training.rng``), so a resumed run draws the same ones.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch


def gradient_penalty(
    D: Any,
    real: torch.Tensor,
    fake: torch.Tensor,
    *,
    weight: float,
    scaler: torch.amp.GradScaler | None = None,
    autocast_ctx: contextlib.AbstractContextManager | None = None,
    shard: tuple[int, int] = (0, 1),
    alpha: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """``weight * mean((||grad_x D(x_hat)||_2 - 1)^2)`` at ``x_hat = alpha * real + (1 -
    alpha) * fake``, ``alpha ~ U[0, 1]`` per sample (Algorithm 1, lines 4-7: the
    two-sided penalty on random interpolates between real and generated images).

    A float32 scalar that is part of the autograd graph (``create_graph=True``), so
    adding it to D's loss and calling backward trains D on it (a double backward).

    ``D``: the discriminator as it runs eagerly (a plain module, or its
    DistributedDataParallel wrapper). A ``torch.compile``'d module is unwrapped to the
    module it compiled: AOTAutograd does not support double backward (pytorch#91469
    made it an error; pytorch#181581 found a case that was silently wrong), so the
    penalty's forward is always eager while the model's other forwards may be compiled.
    Each sample's gradient is its own only when D treats samples independently (layer
    norm or none, not batchnorm), as Gulrajani et al. require of the critic.

    ``autocast_ctx``: the autocast context the model's step runs D in (one context for
    the one forward; entered once). ``scaler``: its gradient scaler, or None. Following
    PyTorch's AMP "gradient penalty" recipe, the gradient is taken of the scaled output,
    so fp16's backward does not underflow, then unscaled before the norm. Two
    differences, both for the same numbers: the scaled quantity is the mean of D's
    outputs (like every loss the scaler sees; the sum would put the whole scale, 2^16 at
    first, on each fp16 output, past fp16's largest 65504), multiplied back by the batch
    size; and the unscaling divides by the scale as a device tensor rather than
    ``scaler.get_scale()``, which would wait for the device every step. A gradient that
    still overflows makes the penalty inf and the scaler skips that D step and lowers
    the scale, as for any overflowing loss.

    ``shard``: (rank, world size) in a data-parallel run. Every rank draws the weights
    of the whole global batch and keeps its slice (as ``GanModel.batch_latent`` does
    for latents), so the ranks draw what one process would, and their generators stay
    equal. ``labels``: a conditional D's classes for the interpolates, those of the real
    images (PyTorch-StudioGAN's cal_grad_penalty conditions on the real labels too).
    ``alpha``: given weights (N values), for tests; drawn when None.
    """
    D = getattr(D, "_orig_mod", D)  # torch.compile's OptimizedModule -> the eager module
    real, fake = real.detach(), fake.detach()
    n = real.shape[0]
    if alpha is None:
        rank, world = shard
        alpha = torch.rand(n * world, device=real.device)[rank * n : (rank + 1) * n]
    alpha = alpha.to(device=real.device, dtype=real.dtype).view(n, *[1] * (real.dim() - 1))
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    with autocast_ctx if autocast_ctx is not None else contextlib.nullcontext():
        out = D(x_hat) if labels is None else D(x_hat, labels)
    mean = out.float().mean()
    if scaler is not None and scaler.is_enabled():
        # the scale as a tensor on the device: scale(1) multiplies by it, no host sync
        scale = scaler.scale(torch.ones((), device=real.device))
        (grad,) = torch.autograd.grad(scaler.scale(mean), x_hat, create_graph=True)
        grad = grad / scale
    else:
        (grad,) = torch.autograd.grad(mean, x_hat, create_graph=True)
    # d mean / d x_hat[i] is D's gradient at x_hat[i] over n (each sample reaches only its
    # own output); x_hat is float32, so is the gradient: no autocast needed for the norm.
    norms = torch.linalg.vector_norm(grad.flatten(1) * n, dim=1)
    return weight * (norms - 1).square().mean()
