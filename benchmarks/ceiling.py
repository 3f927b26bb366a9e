"""The floor and the ceiling: FLOPs of one DCGAN training iteration, and the device's
measured dense matmul rate, so images/s can be read as a fraction of what the hardware does.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from benchmarks import textbook


def forward_flops(module: nn.Module, example: torch.Tensor) -> int:
    """FLOPs (2 x multiply-adds) of the convolutions in one forward of one image."""
    total = 0

    def count(layer: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        k = layer.kernel_size[0] * layer.kernel_size[1]
        if isinstance(layer, nn.ConvTranspose2d):  # every input pixel meets the whole kernel
            macs = inputs[0][0].numel() * layer.out_channels * k // layer.groups
        else:
            macs = output[0].numel() * layer.in_channels * k // layer.groups
        total += 2 * macs

    hooks = [
        m.register_forward_hook(count)
        for m in module.modules()
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)
    ]
    try:
        with torch.no_grad():
            module(example)
    finally:
        for h in hooks:
            h.remove()
    return total


def iteration_flops(channels: int, resolution: int) -> dict[str, float]:
    """Per image: G and D forwards, and one training iteration. A backward costs two
    forwards (input and weight gradients). D step: G forward, D forward on real and fake,
    their backwards (F_G + 6 F_D); G step: D forward and backward, G backward (3 F_D +
    2 F_G), D's weight gradients included as PyTorch computes them: 3 F_G + 9 F_D."""
    g = textbook.generator(channels, resolution).eval()
    d = textbook.discriminator(channels, resolution).eval()
    f_g = forward_flops(g, torch.zeros(1, 100, 1, 1))
    f_d = forward_flops(d, torch.zeros(1, channels, resolution, resolution))
    return {"g_forward": f_g, "d_forward": f_d, "iteration": 3 * f_g + 9 * f_d}


def matmul_rate(device: torch.device, dtype: torch.dtype, size: int | None = None) -> float:
    """Sustained FLOP/s of a square matmul on ``device`` (the best of several runs)."""
    size = size or (8192 if device.type == "cuda" else 2048)
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(5 if device.type == "cpu" else 20):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        (a @ b).sum().item()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best
