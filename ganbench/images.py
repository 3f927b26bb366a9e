"""The pictures people look at: sample grids and loss curves.

The grid and file helpers below ``sample_grid`` use NumPy and Pillow only: torchvision's
``make_grid`` would pull in torch, which the zoo's runtime commands must not need, so they
lay the grid out by hand (2-pixel black borders, row-major, as ``make_grid``). torch is
imported only inside the functions that take tensors.

May import: ganbench.errors, ganbench.files (and the package root ``ganbench``);
tests/test_layers.py checks it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from ganbench.errors import UsageError
from ganbench.files.sealed import atomic_path

if TYPE_CHECKING:
    import torch


def sample_grid(images: torch.Tensor, nrow: int = 8) -> Image.Image:
    """A grid of images in [-1, 1] as an 8-bit PIL image (torchvision's own grid code)."""
    from torchvision.transforms.v2.functional import to_pil_image
    from torchvision.utils import make_grid

    tiled = make_grid(
        images.detach().float().cpu(), nrow=nrow, padding=2, normalize=True, value_range=(-1, 1)
    )
    return to_pil_image(tiled)


def to_uint8(images: np.ndarray, value_range: tuple[float, float] = (-1.0, 1.0)) -> np.ndarray:
    """Floats in ``value_range`` to bytes, rounded as PIL and ganbench's scorer do."""
    lo, hi = value_range
    scaled = (images.astype(np.float32) - lo) * (255.0 / (hi - lo)) + 0.5
    return np.clip(scaled, 0, 255).astype(np.uint8)


def grid(rows: Sequence[Sequence[np.ndarray | None]], padding: int = 2) -> Image.Image:
    """Rows of uint8 C x H x W images (None leaves a cell blank) as one picture."""
    first = next(img for row in rows for img in row if img is not None)
    c, h, w = first.shape
    ncol = max(len(row) for row in rows)
    canvas = np.zeros(
        (c, padding + len(rows) * (h + padding), padding + ncol * (w + padding)), np.uint8
    )
    for r, row in enumerate(rows):
        for k, img in enumerate(row):
            if img is not None:
                y, x = padding + r * (h + padding), padding + k * (w + padding)
                canvas[:, y : y + h, x : x + w] = img
    return Image.fromarray(canvas[0] if c == 1 else canvas.transpose(1, 2, 0))


def square_rows(images: np.ndarray, nrow: int) -> list[list[np.ndarray]]:
    """N images as rows of ``nrow`` (index = row * nrow + column)."""
    return [list(images[i : i + nrow]) for i in range(0, len(images), nrow)]


def check_output(path: Path) -> Path:
    """Fail before any work on an output path that cannot be written as an image."""
    path = Path(path)
    Image.init()
    if path.suffix.lower() not in Image.registered_extensions():
        raise UsageError(f"cannot save a picture as {path.name}: give a .png or .jpg file")
    if path.is_dir():
        raise UsageError(f"cannot write {path}: it is a folder; give a file name")
    folder = path.parent.resolve()
    if not folder.is_dir():
        raise UsageError(f"cannot write {path}: folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageError(f"cannot write {path}: permission denied; choose another -o path")
    return path


def save_atomic(picture: Image.Image, path: Path) -> Path:
    """Write ``path`` whole or not at all (:func:`ganbench.files.sealed.atomic_path`)."""
    path = check_output(path)
    # The temporary file ends in .tmp: PIL is told the format that ``path``'s suffix names.
    image_format = Image.registered_extensions()[path.suffix.lower()]
    try:
        with atomic_path(path) as tmp:
            picture.save(tmp, format=image_format)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def loss_curves(history: Mapping[str, Sequence[tuple[int, float]]], path: Path) -> Path:
    """Losses and mean D outputs against step, one panel each, saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_d) = plt.subplots(1, 2, figsize=(10, 3.6), constrained_layout=True)
    for key, ax in (("loss_d", ax_loss), ("loss_g", ax_loss), ("d_real", ax_d), ("d_fake", ax_d)):
        if history.get(key):
            steps, values = zip(*history[key], strict=True)
            ax.plot(steps, values, label=key, linewidth=1)
    ax_loss.set(title="losses", xlabel="step")
    ax_d.set(title="mean D output: D(x) and D(G(z))", xlabel="step")
    # A probability (DCGAN's sigmoid) on the unit range; a critic's or a least-squares
    # D's raw output can leave it, and is then shown on the range it takes.
    outputs = [v for key in ("d_real", "d_fake") for _, v in history.get(key, ())]
    if all(0 <= v <= 1 for v in outputs):
        ax_d.set(ylim=(0, 1))
    for ax in (ax_loss, ax_d):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
