"""The pictures people look at: sample grids and loss curves.

May import: ganbench.errors, ganbench.files (and the package root ``ganbench``);
tests/test_layers.py checks it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from PIL import Image


def sample_grid(images: torch.Tensor, nrow: int = 8) -> Image.Image:
    """A grid of images in [-1, 1] as an 8-bit PIL image (torchvision's own grid code)."""
    from torchvision.transforms.v2.functional import to_pil_image
    from torchvision.utils import make_grid

    grid = make_grid(
        images.detach().float().cpu(), nrow=nrow, padding=2, normalize=True, value_range=(-1, 1)
    )
    return to_pil_image(grid)


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
