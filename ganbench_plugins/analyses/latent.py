"""Analyses in z: the numbered sample sheet, latent walks (Fig. 4), vector arithmetic (Fig. 7).

They run on the run's PyTorch generator with the zoo's code for the latents, the walks, the
arithmetic and the grids, so ``analyze RUN walk --seed S`` and ``zoo interpolate NAME
--seed S`` on the run's export draw the same pictures.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from ganbench.analysis import AnalysisContext, as_uint8
from ganbench.errors import UsageError
from ganbench.images import grid, square_rows
from ganbench.plugins.interfaces import Analysis, AnalysisOption, AnalysisResult
from ganbench.zoo.runtime import arithmetic_latents, parse_arithmetic, split_rows, walk


def _upscaled(images: np.ndarray, size: int) -> list[Image.Image]:
    """uint8 C x H x W images as RGB pictures of ``size`` pixels (nearest: no blur)."""
    out = []
    for img in images:
        pic = Image.fromarray(img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0))
        out.append(pic.convert("RGB").resize((size, size), Image.NEAREST))
    return out


def numbered_sheet(images: np.ndarray, nrow: int, cell: int = 96) -> Image.Image:
    """Images in a grid of ``nrow`` columns, each with its index under it (for labelling)."""
    label_h, pad = 14, 4
    tiles = _upscaled(images, cell)
    rows = -(-len(tiles) // nrow)
    sheet = Image.new(
        "RGB", (nrow * (cell + pad) + pad, rows * (cell + label_h + pad) + pad), "white"
    )
    draw = ImageDraw.Draw(sheet)
    for i, tile in enumerate(tiles):
        x = pad + (i % nrow) * (cell + pad)
        y = pad + (i // nrow) * (cell + label_h + pad)
        sheet.paste(tile, (x, y))
        draw.text((x + 2, y + cell + 1), str(i), fill="black")
    return sheet


class Samples(Analysis):
    name = "samples"
    summary = (
        "Numbered sample sheet for a seed: the indices that forgetting's --boxes file and"
        " arithmetic's groups refer to (same latents as `zoo sample` of the run's export)"
    )
    options = (
        AnalysisOption("count", "Number of samples.", int, 150, short="n"),
        AnalysisOption("nrow", "Samples per row.", int, 15),
        AnalysisOption("cell", "Side of each sample in the sheet, in pixels.", int, 96),
    )

    def run(self, context: AnalysisContext, options: Mapping[str, Any]) -> AnalysisResult:
        n, nrow = options["count"], options["nrow"]
        if n < 1 or nrow < 1 or options["cell"] < 8:
            raise UsageError("samples: -n and --nrow must be at least 1, --cell at least 8")
        images = as_uint8(context.generate(context.latents(n)))
        r = context.shape.resolution
        return AnalysisResult(
            pictures={"sheet": numbered_sheet(images, nrow, options["cell"])},
            notes={
                "how": f"{n} samples of seed {context.seed}; boxes for forgetting are pixel"
                f" coordinates [x0, y0, x1, y1] in the {r}x{r} generated image"
            },
            lines=[f"sample sheet: {n} samples of seed {context.seed}, index under each"],
        )


class Walk(Analysis):
    name = "walk"
    summary = "Latent walks (paper Fig. 4): rows of images on straight lines in z"
    options = (
        AnalysisOption("rows", "Random walks (row r: sample 2r to 2r+1 of the seed).", int, 4),
        AnalysisOption("steps", "Images per walk.", int, 10),
    )

    def run(self, context: AnalysisContext, options: Mapping[str, Any]) -> AnalysisResult:
        rows, steps = options["rows"], options["steps"]
        if rows < 1 or steps < 2:
            raise UsageError("walk: --rows must be at least 1 and --steps at least 2")
        z = context.latents(2 * rows).numpy()
        walks = np.concatenate([walk(z[2 * r], z[2 * r + 1], steps) for r in range(rows)])
        images = as_uint8(context.generate(torch.from_numpy(walks)))
        picture = grid([list(images[r * steps : (r + 1) * steps]) for r in range(rows)])
        # How smooth the walk is: the mean pixel change between neighbours over the mean
        # change end to end. A memorising generator jumps (sharp transitions) instead.
        x = images.reshape(rows, steps, -1).astype(np.float64) / 255
        step_change = np.abs(np.diff(x, axis=1)).mean(axis=2)
        metrics = {
            "largest_step_share": float(
                (step_change.max(axis=1) / np.maximum(step_change.sum(axis=1), 1e-12)).mean()
            )
        }
        return AnalysisResult(
            pictures={"walks": picture},
            metrics=metrics,
            notes={
                "how": f"{rows} walks of {steps} images between samples 2r and 2r+1 of seed"
                f" {context.seed}; largest_step_share is the biggest jump's share of each walk's"
                f" total pixel change (1/{steps - 1} = perfectly even)"
            },
            lines=[
                f"{rows} walks of {steps} images; largest step share"
                f" {metrics['largest_step_share']:.3f} (even: {1 / (steps - 1):.3f})"
            ],
        )


class Arithmetic(Analysis):
    name = "arithmetic"
    summary = (
        "Vector arithmetic on z (paper Fig. 7): EXPRESSION of sample groups of the"
        ' `samples` sheet, e.g. "1,5,9 - 2,4,6 + 7,8,11"'
    )
    options = (
        AnalysisOption(
            "expression", "Groups of sample indices joined by + and -.", str, required=True
        ),
        AnalysisOption("variations", "Images of the result with noise added.", int, 8),
        AnalysisOption("noise", "Scale of the uniform noise of the variations.", float, 0.25),
    )

    def run(self, context: AnalysisContext, options: Mapping[str, Any]) -> AnalysisResult:
        terms = parse_arithmetic(options["expression"])
        if options["variations"] < 0 or options["noise"] < 0:
            raise UsageError("arithmetic: --variations and --noise cannot be negative")
        z = context.latents(max(max(ix) for _, ix in terms) + 1).numpy()
        rows_z = arithmetic_latents(z, terms, options["variations"], options["noise"], context.seed)
        images = as_uint8(context.generate(torch.from_numpy(np.concatenate(rows_z))))
        written = " ".join(f"{'+-'[sign < 0]} mean{ix}" for sign, ix in terms).lstrip("+ ")
        return AnalysisResult(
            pictures={"arithmetic": grid(split_rows(images, rows_z))},
            notes={"how": f"{options['expression']} on seed {context.seed}: {written}"},
            lines=[
                f"rows: each group's samples then their mean; last row: {written}, + variations"
            ],
        )


__all__ = ["Arithmetic", "Samples", "Walk", "numbered_sheet", "square_rows"]
