"""Running a feature extractor over real images and over a generator's samples.

Both sides go through the same path: uint8 images on the device, batched, no gradients.
Generated images are quantised to uint8 exactly as a saved PNG would be, so a generator
is scored on the images a user would see, as torch-fidelity scores image files. A
class-conditional generator's samples carry the classes they were asked for, gathered
beside the features as ``labels``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ganbench.plugins.interfaces import GanModel, LoadedExtractor
from ganbench.progress import ItemProgress

#: What a sampler draws: ``n`` images in [-1, 1] (float, N x C x H x W) on the device, or
#: (images, labels): the int64 classes a conditional generator was asked for (None: none).
Drawn = torch.Tensor | tuple[torch.Tensor, torch.Tensor | None]
#: Draws ``n`` images (:data:`Drawn`).
Sampler = Callable[[int], Drawn]
#: The key of the generated images' requested classes among the gathered features.
LABELS = "labels"


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats to 0..255 bytes (round half up, as PIL and torchvision save)."""
    return ((images.float() + 1) * 127.5 + 0.5).clamp_(0, 255).to(torch.uint8)


class _Collector:
    """Gathers per-batch outputs on the host as float32 arrays, in order."""

    def __init__(self) -> None:
        self.parts: dict[str, list[np.ndarray]] = {}

    def add(self, out: dict[str, torch.Tensor]) -> None:
        for key, value in out.items():
            value = value if key == LABELS else value.float()  # labels stay int64
            self.parts.setdefault(key, []).append(value.cpu().numpy())

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
    replicas: Any = None,
) -> dict[str, np.ndarray] | None:
    """Features of ``count`` images drawn from ``sample``, and under ``labels`` the
    classes they were generated for when the sampler says them.

    With ``replicas`` (a distributed run) the batches are dealt round-robin to the ranks
    and the features gathered on rank 0 in batch order; the other ranks get None. Every
    rank still draws every batch's latents (``sample.skip`` for the batches of others),
    so each batch has the latents one process would draw and the scores equal the
    single-process ones.
    """
    rank, world = (replicas.rank, replicas.world) if replicas is not None else (0, 1)
    if world > 1 and not hasattr(sample, "skip"):
        raise TypeError("a sampler shared by several ranks needs a skip(n) method")
    out = _Collector()
    enabled = progress and rank == 0
    with ItemProgress(count, description, enabled=enabled) as bar:
        for k, start in enumerate(range(0, count, batch_size)):
            n = min(batch_size, count - start)
            if k % world == rank:
                out.add(_features(extractor, sample(n)))
            else:
                sample.skip(n)  # type: ignore[attr-defined]
            bar.advance(n)
    if world == 1:
        return out.result()
    shares = replicas.gather(out.parts)
    if shares is None:
        return None
    merged = _Collector()
    for k in range(-(-count // batch_size)):
        for key, parts in shares[k % world].items():
            merged.parts.setdefault(key, []).append(parts[k // world])
    return merged.result()


def _features(extractor: LoadedExtractor, drawn: Drawn) -> dict[str, torch.Tensor]:
    images, labels = drawn if isinstance(drawn, tuple) else (drawn, None)
    out = dict(extractor.module(to_uint8(images)))
    if labels is not None:
        out[LABELS] = labels.to(torch.int64)
    return out


def generator_sampler(model: GanModel, device: torch.device, seed: int) -> Sampler:
    """A sampler over ``model.generate`` with its generator in eval mode (batch-norm
    running statistics, so each sample is independent of its batch), drawing (images,
    labels). The latents, then the labels (``model.sample_labels``; None for an
    unconditional model, which draws nothing), come from one seeded torch.Generator: the
    same seed draws the same images of the same classes."""
    rng = torch.Generator().manual_seed(seed)

    def sample(n: int) -> Drawn:
        z = model.sample_latent(n, generator=rng).to(device)
        y = model.sample_labels(n, generator=rng)
        y = None if y is None else y.to(device)
        sampler = model.sampler
        was_training = sampler.training
        sampler.eval()
        try:
            return model.generate(z, y), y
        finally:
            sampler.train(was_training)

    def skip(n: int) -> None:
        """Draw the latents and labels of ``n`` images another rank generates."""
        model.sample_latent(n, generator=rng)
        model.sample_labels(n, generator=rng)

    sample.skip = skip  # type: ignore[attr-defined]
    return sample
