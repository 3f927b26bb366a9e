"""Running a feature extractor over real images and over a generator's samples.

Both sides go through the same path: uint8 images on the device, batched, no gradients.
Generated images are quantised to uint8 exactly as a saved PNG would be, so a generator
is scored on the images a user would see, as torch-fidelity scores image files.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ganbench.interfaces import LoadedExtractor
from ganbench.progress import ItemProgress

#: Draws ``n`` images in [-1, 1] (float, N x C x H x W) on the device.
Sampler = Callable[[int], torch.Tensor]


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats to 0..255 bytes (round half up, as PIL and torchvision save)."""
    return ((images.float() + 1) * 127.5 + 0.5).clamp_(0, 255).to(torch.uint8)


class _Collector:
    """Gathers per-batch outputs on the host as float32 arrays, in order."""

    def __init__(self) -> None:
        self.parts: dict[str, list[np.ndarray]] = {}

    def add(self, out: dict[str, torch.Tensor]) -> None:
        for key, value in out.items():
            self.parts.setdefault(key, []).append(value.float().cpu().numpy())

    def result(self) -> dict[str, np.ndarray]:
        return {k: np.concatenate(v) for k, v in self.parts.items()}


@torch.no_grad()
def image_features(
    extractor: LoadedExtractor,
    images: np.ndarray,
    device: torch.device,
    *,
    batch_size: int = 200,
    progress: bool = True,
    description: str = "real features",
) -> dict[str, np.ndarray]:
    """Features of uint8 N x C x H x W ``images`` (may be memory-mapped)."""
    out = _Collector()
    with ItemProgress(len(images), description, enabled=progress) as bar:
        for start in range(0, len(images), batch_size):
            chunk = np.ascontiguousarray(images[start : start + batch_size])
            batch = torch.from_numpy(chunk).to(device, non_blocking=True)
            out.add(extractor.module(batch))
            bar.advance(len(chunk))
    return out.result()


@torch.no_grad()
def generated_features(
    extractor: LoadedExtractor,
    sample: Sampler,
    count: int,
    *,
    batch_size: int = 200,
    progress: bool = True,
    description: str = "generated features",
) -> dict[str, np.ndarray]:
    """Features of ``count`` images drawn from ``sample``."""
    out = _Collector()
    with ItemProgress(count, description, enabled=progress) as bar:
        for start in range(0, count, batch_size):
            n = min(batch_size, count - start)
            out.add(extractor.module(to_uint8(sample(n))))
            bar.advance(n)
    return out.result()


def generator_sampler(
    generator: torch.nn.Module,
    latent: Callable[..., torch.Tensor],
    device: torch.device,
    seed: int,
) -> Sampler:
    """A sampler over ``generator`` in eval mode (batch-norm running statistics, so each
    sample is independent of its batch), with latents from a seeded torch.Generator:
    the same seed draws the same images."""
    rng = torch.Generator().manual_seed(seed)

    def sample(n: int) -> torch.Tensor:
        z = latent(n, generator=rng).to(device)
        was_training = generator.training
        generator.eval()
        try:
            return generator(z)
        finally:
            generator.train(was_training)

    return sample
