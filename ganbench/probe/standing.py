"""Batchnorm "standing statistics": D's normalisation recomputed on real training images.

A discriminator's running statistics come from training, where each step shows it D(real)
and D(fake) twice: two thirds of what it averaged are fakes, and a random-init D has the
initial zeros and ones. The DCGAN authors recompute every batchnorm layer's mean and
variance on real training images before they extract the probe's features
(Newmu/dcgan_code, svhn/svhn_semisup_analysis.py lines 48-86: ``bnorm_statistics`` runs the
network with batch statistics; ``infer_bnorm_stats(trX)`` averages, over batches of 128 of
the training images, each batch's per-channel mean and its biased variance; ``model`` then
normalises with those). :func:`recalibrate_batchnorm` does the same for any
discriminator's ``BatchNorm`` layers, in place.

Deviation: the layers keep their own epsilon (PyTorch's 1e-5, what D trained with) where
the authors' Theano ``batchnorm`` used 1e-8 (lib/ops.py line 52).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ganbench.progress import ItemProgress

#: The authors' batch for the statistics (``infer_bnorm_stats(X, nbatch=128)``).
AUTHORS_BATCH = 128


@dataclass(frozen=True)
class Recalibration:
    """What :func:`recalibrate_batchnorm` did, for the run's record."""

    layers: int
    images: int
    batches: int

    def describe(self) -> str:
        if not self.layers:
            return "no batchnorm layer (nothing to recalibrate)"
        return (
            f"{self.layers} batchnorm layer(s) recalibrated on {self.images} real training"
            f" images ({self.batches} batches: mean of per-batch means and biased variances)"
        )


def batchnorm_layers(network: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The layers whose running statistics normalise in eval mode."""
    return [
        m
        for m in network.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]


def _channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and biased variance of an N x C (x H x W) input, in float64."""
    dims = [0, *range(2, x.ndim)]
    x = x.detach().double()
    mean = x.mean(dims)
    var = (x - mean.view(1, -1, *([1] * (x.ndim - 2)))).square().mean(dims)
    return mean, var


@torch.no_grad()
def recalibrate_batchnorm(
    network: nn.Module,
    images: np.ndarray,
    device: torch.device | str,
    *,
    batch_size: int = AUTHORS_BATCH,
    progress: bool = False,
) -> Recalibration:
    """Set every batchnorm layer's running mean and variance of ``network`` to the
    authors' standing statistics on ``images`` (uint8 N x C x H x W, scaled to [-1, 1] on
    the device as in training).

    Each batch runs through the network with batch statistics (the batchnorm layers in
    training mode; every other module, spectral normalisation's power iteration included,
    in eval mode), a forward hook records each layer's per-channel mean and biased
    variance of its input, and each layer's running statistics become the average of
    those over the batches (every batch counted once, the last, shorter one too, as the
    authors' ``infer_bnorm_stats`` does). The network's modes, momenta and batch counters
    are restored; only the running statistics change.
    """
    layers = batchnorm_layers(network)
    if not layers or len(images) == 0:
        return Recalibration(len(layers), 0, 0)
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(
            f"images must be a uint8 N x C x H x W array, got {images.dtype}"
            f" with shape {tuple(images.shape)}"
        )
    device = torch.device(device)
    sums = {id(m): [0.0, 0.0] for m in layers}
    modes = {m: m.training for m in network.modules()}
    saved = {id(m): (m.momentum, m.num_batches_tracked.clone()) for m in layers}

    def record(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        mean, var = _channel_stats(inputs[0])
        sums[id(module)][0] += mean
        sums[id(module)][1] += var

    hooks = [m.register_forward_pre_hook(record) for m in layers]
    network.eval()
    for m in layers:
        m.train()
        m.momentum = 0.0  # batch statistics normalise; the running ones stay as they were
    batches = 0
    try:
        with ItemProgress(len(images), "batchnorm statistics", enabled=progress) as bar:
            for start in range(0, len(images), batch_size):
                chunk = np.ascontiguousarray(images[start : start + batch_size])
                x = torch.from_numpy(chunk).to(device).float().div_(127.5).sub_(1.0)
                network(x)
                batches += 1
                bar.advance(len(chunk))
    finally:
        for hook in hooks:
            hook.remove()
        for module, mode in modes.items():
            module.train(mode)
        for m in layers:
            m.momentum, tracked = saved[id(m)]
            m.num_batches_tracked.copy_(tracked)
    for m in layers:
        mean, var = sums[id(m)]
        m.running_mean.copy_(mean / batches)
        m.running_var.copy_(var / batches)
    return Recalibration(len(layers), len(images), batches)
