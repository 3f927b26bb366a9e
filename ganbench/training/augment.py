"""DiffAugment: differentiable augmentation of every image the discriminator sees.

With little data D memorises the training set and G's FID degrades; augmenting only the
reals shifts the distribution G learns. DiffAugment (Zhao, Liu, Lin, Zhu, Han 2020,
"Differentiable Augmentation for Data-Efficient GAN Training", arXiv 2006.10738) applies
the same random, differentiable transforms to real and generated images in both D's and
G's updates, so gradients reach G through them. It is a core mechanism for every plugin:
the runner sets ``GanModel.augment`` to a :class:`DiffAugment` and a model's step calls
``self.d_input(images)`` on every batch before D.

Reference: mit-han-lab/data-efficient-gans DiffAugment_pytorch.py (commit 0b633951),
whose operations, parameters and order of random draws we follow:

* ``color`` (lines 22-36): brightness ``x + (U(0,1) - 0.5)``, then saturation
  ``(x - mean_c) * 2U(0,1) + mean_c`` (mean over channels), then contrast
  ``(x - mean) * (U(0,1) + 0.5) + mean`` (mean over channels and pixels); one draw per image
  each, in the images' dtype.
* ``translation`` (lines 39-52): per image integer offsets in ``[-s, s]`` with
  ``s = int(size * 1/8 + 0.5)``, rows drawn before columns; pixel ``(i, j)`` of the result
  is pixel ``(i + dy, j + dx)`` of the input, zero outside it.
* ``cutout`` (lines 55-69): a square of side ``int(size * 1/2 + 0.5)`` centred at a random
  pixel (centre drawn in ``[0, size + 1 - side % 2)``) set to zero, clipped at the border.

Like the reference, the transforms assume images in [-1, 1] (its BigGAN-CIFAR training
normalises data with mean 0.5, std 0.5: DiffAugment-biggan-cifar/utils.py line 572), so a
zero fill is mid-grey and brightness shifts by up to a quarter of the range. The random
numbers come from torch's default generator on the images' device, as the reference's do:
a seeded run repeats them, and a CUDA graph capture covers that generator.

Deviations: translation gathers rows and then columns with a clamped index and a
zero-fill mask instead of the reference's padded meshgrid fancy indexing, and cutout builds
its mask from row and column interval tests instead of an indexed assignment; same results,
no (B, H, W) index grids or scatter, traceable by ``torch.compile`` and no host sync.
Grayscale images (one channel): the channel mean is the image, so saturation is exactly
the identity (its random number is still drawn, keeping the stream aligned).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ganbench.training.config import POLICY_OPS, parse_policy

__all__ = ["POLICY_OPS", "DiffAugment", "diff_augment", "parse_policy"]

#: Largest translation, as a fraction of the image size (reference ``ratio=0.125``).
TRANSLATION_RATIO = 0.125
#: Side of the cut-out square, as a fraction of the image size (reference ``ratio=0.5``).
CUTOUT_RATIO = 0.5


def _per_image(values: torch.Tensor) -> torch.Tensor:
    return values.reshape(-1, 1, 1, 1)


def adjust_brightness(images: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Add ``shift[k]`` to every pixel of image ``k``."""
    return images + _per_image(shift)


def adjust_saturation(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Scale image ``k``'s deviation from its per-pixel channel mean by ``factor[k]``."""
    mean = images.mean(dim=1, keepdim=True)
    return (images - mean) * _per_image(factor) + mean


def adjust_contrast(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Scale image ``k``'s deviation from its mean (all channels and pixels) by ``factor[k]``."""
    mean = images.mean(dim=[1, 2, 3], keepdim=True)
    return (images - mean) * _per_image(factor) + mean


def _shift_along(images: torch.Tensor, offsets: torch.Tensor, dim: int) -> torch.Tensor:
    """Index ``i`` along ``dim`` of the result is ``i + offsets[k]`` of image ``k``, or 0."""
    size = images.shape[dim]
    source = torch.arange(size, device=images.device) + offsets.reshape(-1, 1)  # (N, size)
    inside = (source >= 0) & (source < size)
    shape = [images.shape[0], 1, 1, 1]
    shape[dim] = size
    index = source.clamp(0, size - 1).reshape(shape).expand(images.shape)
    return torch.where(inside.reshape(shape), images.gather(dim, index), 0.0)


def translate(images: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Pixel ``(i, j)`` of result image ``k`` is pixel ``(i + rows[k], j + cols[k])`` of
    input image ``k``, zero where that lies outside (integer offsets, reference order)."""
    return _shift_along(_shift_along(images, rows, 2), cols, 3)


def cut_out(
    images: torch.Tensor,
    centre_rows: torch.Tensor,
    centre_cols: torch.Tensor,
    side: tuple[int, int],
) -> torch.Tensor:
    """Zero, in image ``k``, the ``side[0]`` x ``side[1]`` rectangle whose top-left pixel is
    ``(centre_rows[k] - side[0] // 2, centre_cols[k] - side[1] // 2)``, clipped at the border."""
    _, _, height, width = images.shape

    def covered(centres: torch.Tensor, length: int, size: int) -> torch.Tensor:
        first = centres.reshape(-1, 1) - length // 2
        position = torch.arange(size, device=images.device)
        return (position >= first) & (position < first + length)  # (N, size)

    inside = (
        covered(centre_rows, side[0], height)[:, :, None]
        & covered(centre_cols, side[1], width)[:, None, :]
    )
    return images * (~inside).unsqueeze(1).to(images.dtype)


def translation_limits(
    height: int, width: int, ratio: float = TRANSLATION_RATIO
) -> tuple[int, int]:
    """Largest row and column offsets: ``int(size * ratio + 0.5)`` (reference line 40)."""
    return int(height * ratio + 0.5), int(width * ratio + 0.5)


def cutout_side(height: int, width: int, ratio: float = CUTOUT_RATIO) -> tuple[int, int]:
    """The cut-out rectangle's height and width: ``int(size * ratio + 0.5)`` (line 56)."""
    return int(height * ratio + 0.5), int(width * ratio + 0.5)


def _rand(images: torch.Tensor) -> torch.Tensor:
    return torch.rand(images.shape[0], dtype=images.dtype, device=images.device)


def random_color(images: torch.Tensor) -> torch.Tensor:
    """Brightness, saturation, contrast with the reference's per-image draws."""
    images = adjust_brightness(images, _rand(images) - 0.5)
    images = adjust_saturation(images, _rand(images) * 2)
    return adjust_contrast(images, _rand(images) + 0.5)


def random_translation(images: torch.Tensor) -> torch.Tensor:
    """Translate each image by up to 1/8 of its size, zero fill."""
    count, device = images.shape[0], images.device
    limit_rows, limit_cols = translation_limits(images.shape[2], images.shape[3])
    rows = torch.randint(-limit_rows, limit_rows + 1, (count,), device=device)
    cols = torch.randint(-limit_cols, limit_cols + 1, (count,), device=device)
    return translate(images, rows, cols)


def random_cutout(images: torch.Tensor) -> torch.Tensor:
    """Zero a square of half the image's size at a random centre in each image."""
    count, device = images.shape[0], images.device
    side = cutout_side(images.shape[2], images.shape[3])
    centre_rows = torch.randint(0, images.shape[2] + 1 - side[0] % 2, (count,), device=device)
    centre_cols = torch.randint(0, images.shape[3] + 1 - side[1] % 2, (count,), device=device)
    return cut_out(images, centre_rows, centre_cols, side)


_OPERATIONS = {"color": random_color, "translation": random_translation, "cutout": random_cutout}


class DiffAugment(torch.nn.Module):
    """The policy's operations, in its order, on an (N, C, H, W) batch in [-1, 1]; each
    image gets its own draw. Differentiable with respect to the images; no parameters."""

    def __init__(self, policy: str | Sequence[str]) -> None:
        super().__init__()
        names = parse_policy(policy) if isinstance(policy, str) else parse_policy(",".join(policy))
        self.policy: tuple[str, ...] = names

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4:
            raise ValueError(
                f"DiffAugment expects an (N, C, H, W) batch; got shape {tuple(images.shape)}"
            )
        for name in self.policy:
            images = _OPERATIONS[name](images)
        return images

    def extra_repr(self) -> str:
        return f"policy={','.join(self.policy)!r}"


def diff_augment(policy: str | Sequence[str]) -> DiffAugment | None:
    """What the runner sets ``GanModel.augment`` to: a :class:`DiffAugment`, or None for an
    empty policy (so a model's ``d_input`` passes images through untouched)."""
    augment = DiffAugment(policy)
    return augment if augment.policy else None
