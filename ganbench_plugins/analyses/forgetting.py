"""Forgetting to draw an object (DCGAN paper Sec. 6.3.1, Fig. 6).

The user draws boxes around an object (the paper: windows) on the numbered sample sheet of
``analyze RUN samples``; a logistic regression on one generator layer's feature vectors
predicts "this location is on the object"; the maps with a positive weight are then zeroed
at every spatial location and the same latents drawn again. If the generator keeps the
object in those maps, it disappears (or becomes something else) and the rest stays.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from ganbench.analysis import AnalysisContext
from ganbench.errors import UsageError
from ganbench.images import grid, to_uint8
from ganbench.plugins.interfaces import Analysis, AnalysisOption, AnalysisResult
from ganbench_plugins.analyses.boxes import Boxes, inside, parse_boxes


# -- the computation --------------------------------------------------------------------------
@dataclass
class Forgotten:
    """What :func:`forget` found; images are [-1, 1] float N x C x R x R, in box order."""

    indices: list[int]
    maps: list[int]
    weights: list[float]
    channels: int
    map_size: tuple[int, int]
    positives: int
    negatives: int
    #: Share of locations classified right, and the mean of the two classes' recalls
    #: (0.5 = chance whatever the share of object locations).
    accuracy: float
    balanced_accuracy: float
    #: The same on samples the regression did not see (None when not measurable).
    heldout_accuracy: float | None
    heldout_balanced_accuracy: float | None
    heldout_folds: int
    with_maps: torch.Tensor
    without_maps: torch.Tensor
    change_inside: float
    change_outside: float


def _forward(
    generator: torch.nn.Module, z: torch.Tensor, layer: torch.nn.Module, hook: Any, batch: int
) -> torch.Tensor:
    """Images for ``z`` (CPU float32) with ``hook`` on ``layer``, removed whatever happens."""
    device = next(iter(generator.parameters()), torch.empty(0)).device
    handle = layer.register_forward_hook(hook)
    try:
        with torch.no_grad():
            parts = [
                generator(z[i : i + batch].to(device)).float().cpu()
                for i in range(0, len(z), batch)
            ]
    finally:
        handle.remove()
    return torch.cat(parts)


def _classifier(c: float) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    # Standardised maps: weights in units of one standard deviation of each map (comparable
    # across maps, and lbfgs converges); a map's sign is the same as on raw activations up to
    # the regularisation. A dead map (constant) gets weight 0 and is never dropped.
    # class_weight="balanced": an object covers a minority of locations (windows: a few
    # percent), and unbalanced the fit can buy most of its accuracy with the intercept;
    # balanced, "on the object" and "not" weigh the same, which is what a weight's sign
    # should speak for. Measured, the choice rarely matters: the tests' generator drops
    # maps {2, 5, 7} either way; a 400-step digits run (32 maps of 8x8, 60 samples) drops the
    # same 17 maps for "upper half" boxes and 12 vs 13 (one map differs) for centre boxes.
    # It costs plain accuracy (0.640 vs 0.694 against a majority rate of 0.667), so the
    # balanced accuracy (chance = 0.5) is reported beside it.
    return make_pipeline(
        StandardScaler(), LogisticRegression(C=c, class_weight="balanced", max_iter=2000)
    )


def _heldout(
    x: np.ndarray, y: np.ndarray, groups: np.ndarray, c: float
) -> tuple[float | None, float | None, int]:
    """(accuracy, balanced accuracy, folds) on samples the regression did not see: a 5-fold
    split by sample (fewer folds with fewer samples), predictions pooled over the folds.
    Folds whose training part lacks a class are skipped, hence the hand loop rather than
    cross_val_score; (None, None, 0) when no fold could be scored."""
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import GroupKFold

    n_groups = len(np.unique(groups))
    if n_groups < 2:
        return None, None, 0
    predicted = np.full(len(y), -1)
    folds = 0
    for train, test in GroupKFold(n_splits=min(5, n_groups)).split(x, y, groups):
        if len(np.unique(y[train])) < 2:
            continue
        predicted[test] = _classifier(c).fit(x[train], y[train]).predict(x[test])
        folds += 1
    scored = predicted >= 0
    if not scored.any():
        return None, None, 0
    accuracy = float((predicted[scored] == y[scored]).mean())
    balanced = float(balanced_accuracy_score(y[scored], predicted[scored]))
    return accuracy, balanced, folds


def forget(
    generator: torch.nn.Module,
    layers: Sequence[torch.nn.Module],
    z: torch.Tensor,
    boxes: Boxes,
    *,
    layer: int = 2,
    c: float = 1.0,
    batch: int = 256,
) -> Forgotten:
    """Fit "on a box or not" on layer ``-layer`` of ``layers`` for the labelled samples
    (``z[i]`` for each index of ``boxes``), drop the maps of positive weight, draw again.

    The resolution is the generated images'; boxes must have been checked against it.
    """
    if not 1 <= layer <= len(layers):
        raise UsageError(
            f"--layer {layer}: the generator has {len(layers)} feature layers; give 1 (the"
            f" highest, before the image) to {len(layers)} (the first, from z)"
        )
    if not 0 < c < math.inf:
        raise UsageError(f"--c {c}: the inverse regularisation strength must be positive")
    from sklearn.metrics import balanced_accuracy_score

    indices = sorted(boxes)
    if indices[-1] >= len(z):
        raise UsageError(f"sample {indices[-1]} has no latent ({len(z)} given)")
    target = layers[-layer]
    zs = z[indices].float()
    captured: list[torch.Tensor] = []

    def capture(_module: Any, _inputs: Any, output: torch.Tensor) -> None:
        # A copy: the DCGAN layers are in-place ReLUs whose output tensors may be reused.
        captured.append(output.detach().float().cpu().clone())

    with_maps = _forward(generator, zs, target, capture, batch)
    acts = torch.cat(captured)
    if acts.dim() != 4:
        raise UsageError(
            f"layer {layer} from the top makes {tuple(acts.shape[1:])} outputs, not C x h x w"
            " feature maps; choose another --layer"
        )
    n, channels, h, w = acts.shape
    resolution = with_maps.shape[-1]
    labels = np.stack([inside(boxes[i], h, w, resolution) for i in indices])
    y = labels.reshape(-1).astype(int)
    positives = int(y.sum())
    if positives == 0:
        raise UsageError(
            f"no box covers the centre of a cell of layer {layer}'s {h}x{w} maps (cells of"
            f" {resolution / w:g} pixels): draw larger boxes around the object"
        )
    if positives == len(y):
        raise UsageError(
            "the boxes cover every location: add samples without the object (listed with [])"
            " or draw boxes around the object only"
        )
    x = acts.permute(0, 2, 3, 1).reshape(-1, channels).numpy()
    groups = np.repeat(np.arange(n), h * w)
    model = _classifier(c).fit(x, y)
    predicted = model.predict(x)
    accuracy = float((predicted == y).mean())
    balanced = float(balanced_accuracy_score(y, predicted))
    heldout, heldout_balanced, folds = _heldout(x, y, groups, c)
    coef = model[-1].coef_[0]
    maps = [int(k) for k in np.flatnonzero(coef > 0)]

    mask = torch.ones(1, channels, 1, 1)
    mask[0, maps] = 0.0

    def drop(_module: Any, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
        # Returning a new tensor replaces the layer's output (fine after an in-place ReLU).
        return output * mask.to(output.device, output.dtype)

    without_maps = _forward(generator, zs, target, drop, batch)
    pixels = torch.from_numpy(
        np.stack([inside(boxes[i], *with_maps.shape[-2:], resolution) for i in indices])
    )
    change = ((with_maps - without_maps).abs() / 2).mean(dim=1)  # [0, 1] units, per pixel
    change_inside = float(change[pixels].mean()) if pixels.any() else 0.0
    change_outside = float(change[~pixels].mean()) if (~pixels).any() else 0.0
    return Forgotten(
        indices=indices,
        maps=maps,
        weights=[float(coef[k]) for k in maps],
        channels=channels,
        map_size=(h, w),
        positives=positives,
        negatives=len(y) - positives,
        accuracy=accuracy,
        balanced_accuracy=balanced,
        heldout_accuracy=heldout,
        heldout_balanced_accuracy=heldout_balanced,
        heldout_folds=folds,
        with_maps=with_maps,
        without_maps=without_maps,
        change_inside=change_inside,
        change_outside=change_outside,
    )


# -- the picture ------------------------------------------------------------------------------
def pairs_picture(
    found: Forgotten, boxes: Boxes, show: int, per_row: int = 4, min_cell: int = 64
) -> Image.Image:
    """The first ``show`` labelled samples as pairs (with the maps, boxes in red | without),
    ``per_row`` pairs a row, upscaled (nearest) to at least ``min_cell`` pixels so that the
    box outlines do not hide the small images."""
    resolution = found.with_maps.shape[-1]
    scale = max(1, -(-min_cell // resolution))
    tiles: list[np.ndarray] = []
    for k in range(min(show, len(found.indices))):
        for images, draw_boxes in ((found.with_maps, True), (found.without_maps, False)):
            img = to_uint8(images[k].numpy())
            pic = Image.fromarray(img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0))
            pic = pic.convert("RGB").resize((resolution * scale,) * 2, Image.NEAREST)
            if draw_boxes:
                draw = ImageDraw.Draw(pic)
                for x0, y0, x1, y1 in boxes[found.indices[k]]:
                    corners = [x0 * scale, y0 * scale, x1 * scale - 1, y1 * scale - 1]
                    draw.rectangle(corners, outline=(255, 0, 0))
            tiles.append(np.asarray(pic).transpose(2, 0, 1))
    rows: list[list[np.ndarray | None]] = []
    for start in range(0, len(tiles), 2 * per_row):
        row: list[np.ndarray | None] = []
        for p in range(start, min(start + 2 * per_row, len(tiles)), 2):
            row += [tiles[p], tiles[p + 1], None]  # a blank cell between pairs
        rows.append(row[:-1])
    return grid(rows, padding=2)


class Forgetting(Analysis):
    name = "forgetting"
    summary = (
        "Forgetting to draw an object (paper Sec. 6.3.1): drop the generator's feature maps"
        " that a logistic regression ties to boxes drawn on the `samples` sheet"
    )
    needs = frozenset({"generator"})
    options = (
        AnalysisOption(
            "boxes",
            'JSON file {"<sample index>": [[x0, y0, x1, y1], ...]}: pixel boxes around the'
            " object on the `analyze RUN samples` sheet of the same --seed; [] = a sample"
            " without it; unlisted samples are not used.",
            Path,
            required=True,
        ),
        AnalysisOption(
            "layer",
            "Feature layer, counted from the top: 1 = the highest (before the image), 2 = the"
            " second highest (the paper's).",
            int,
            2,
        ),
        AnalysisOption("show", "Labelled samples drawn with and without the maps.", int, 16),
        AnalysisOption("c", "Inverse L2 regularisation strength of the regression.", float, 1.0),
    )

    def run(self, context: AnalysisContext, options: Mapping[str, Any]) -> AnalysisResult:
        if options["show"] < 0:
            raise UsageError("forgetting: --show cannot be negative")
        resolution = context.shape.resolution
        boxes = parse_boxes(options["boxes"], resolution)
        layers = context.model.generator_layers()
        z = context.latents(max(boxes) + 1)
        found = forget(context.generator, layers, z, boxes, layer=options["layer"], c=options["c"])
        total = found.positives + found.negatives
        metrics = {
            "accuracy": found.accuracy,
            "balanced_accuracy": found.balanced_accuracy,
            # What "always say the majority class" scores, to judge the accuracies against.
            "majority_accuracy": max(found.positives, found.negatives) / total,
            "maps_dropped": float(len(found.maps)),
            "maps_total": float(found.channels),
            "change_inside_boxes": found.change_inside,
            "change_outside_boxes": found.change_outside,
        }
        if found.heldout_accuracy is not None:
            metrics["heldout_accuracy"] = found.heldout_accuracy
            metrics["heldout_balanced_accuracy"] = found.heldout_balanced_accuracy or 0.0
            heldout = (
                f"held-out {found.heldout_accuracy:.3f} (balanced"
                f" {found.heldout_balanced_accuracy:.3f}; {found.heldout_folds}-fold, split by"
                " sample)"
            )
        else:
            heldout = "held-out not measured (too few samples, or no fold with both classes)"
        h, w = found.map_size
        layer = options["layer"]
        accuracy = (
            f"training accuracy {found.accuracy:.3f} (balanced {found.balanced_accuracy:.3f}),"
            f" {heldout}; majority class {metrics['majority_accuracy']:.3f}"
        )
        change = (
            f"mean pixel change (0-1) inside the boxes {found.change_inside:.4f}, outside"
            f" {found.change_outside:.4f}"
        )
        notes = {
            "how": f"{len(found.indices)} labelled samples of seed {context.seed} (boxes from"
            f" {options['boxes']}); layer {layer} from the top ({found.channels} maps of"
            f" {h}x{w}): each location's {found.channels} activations labelled by whether its"
            f" cell's centre lies in a box ({found.positives} on, {found.negatives} off);"
            f" standardised, class-balanced L2 logistic regression (C={options['c']}); the maps"
            " with weight > 0 zeroed at every location and the same latents drawn again",
            "result": f"{len(found.maps)} of {found.channels} maps dropped; {accuracy}; {change}",
            "picture": "pairs: with the maps (boxes in red) | without them",
        }
        return AnalysisResult(
            pictures={"forgetting": pairs_picture(found, boxes, options["show"])}
            if options["show"] > 0
            else {},
            metrics=metrics,
            notes=notes,
            tables={
                "dropped_maps": {
                    "layer": layer,
                    "layer_index": len(layers) - layer,
                    "maps": found.maps,
                    "weights": found.weights,
                    "samples": found.indices,
                }
            },
            lines=[
                f"layer {layer} from the top: dropped {len(found.maps)} of {found.channels} maps",
                accuracy,
                change,
            ],
        )


__all__ = ["Forgetting", "Forgotten", "forget", "pairs_picture"]
