"""The ``--boxes`` file of the forgetting analysis: pixel boxes drawn around an object on
the numbered ``analyze RUN samples`` sheet, read and checked, and which cells of a feature
map they cover. Its own module: :mod:`ganbench_plugins.analyses.forgetting` holds the
regression, the dropping of maps and the picture.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ganbench.errors import UsageError

Box = tuple[float, float, float, float]
#: Sample index (of the seed's numbered sheet) -> its boxes; [] = no object in it.
Boxes = dict[int, list[Box]]

_BOX_FORM = (
    "coordinates are pixels [x0, y0, x1, y1] with 0 <= x0 < x1 <= {r} and 0 <= y0 < y1 <= {r}"
)


def parse_boxes(path: Path, resolution: int) -> Boxes:
    """The boxes of a ``--boxes`` file, checked against a ``resolution`` x ``resolution``
    image; one-line :class:`UsageError` naming what is wrong and how to write it."""
    form = 'write {"<sample index>": [[x0, y0, x1, y1], ...], ...}'
    form += f" ({_BOX_FORM.format(r=resolution)})"
    try:
        raw = json.loads(Path(path).read_text())
    except OSError as exc:
        raise UsageError(f"cannot read boxes file {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"boxes file {path} is not JSON ({exc}); {form}") from None
    if not isinstance(raw, dict):
        raise UsageError(f"boxes file {path} holds a {type(raw).__name__}, not an object; {form}")
    boxes: Boxes = {}
    for key, value in raw.items():
        if not (key.isascii() and key.isdigit()):
            raise UsageError(
                f"boxes file {path}: {key!r} is not a sample index (a non-negative integer"
                " under the sample on the `analyze RUN samples` sheet)"
            )
        index = int(key)
        if not isinstance(value, list):
            raise UsageError(f"boxes file {path}: sample {index} holds no list of boxes; {form}")
        boxes[index] = [_check_box(box, index, resolution, path) for box in value]
    if not boxes:
        raise UsageError(f"boxes file {path} lists no samples; {form}")
    return boxes


def _check_box(box: Any, index: int, r: int, path: Path) -> Box:
    numbers = isinstance(box, list) and all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in box
    )
    if not numbers or len(box) != 4:
        raise UsageError(
            f"boxes file {path}: box {json.dumps(box)} of sample {index} is not 4 numbers;"
            f" {_BOX_FORM.format(r=r)}"
        )
    x0, y0, x1, y1 = (float(v) for v in box)
    if not (x0 < x1 and y0 < y1):
        raise UsageError(
            f"boxes file {path}: box {json.dumps(box)} of sample {index} is empty or reversed;"
            f" {_BOX_FORM.format(r=r)}"
        )
    if not (x0 >= 0 and y0 >= 0 and x1 <= r and y1 <= r):
        raise UsageError(
            f"box {json.dumps(box)} of sample {index} is outside the {r}x{r} image;"
            f" {_BOX_FORM.format(r=r)}"
        )
    return (x0, y0, x1, y1)


def inside(boxes: Sequence[Box], h: int, w: int, resolution: int) -> np.ndarray:
    """h x w booleans: is the centre of cell (i, j), in image pixels ((j + 0.5) * R / w,
    (i + 0.5) * R / h), inside one of ``boxes``? With h = w = R: the pixels in the boxes."""
    cy = (np.arange(h) + 0.5) * resolution / h
    cx = (np.arange(w) + 0.5) * resolution / w
    mask = np.zeros((h, w), bool)
    for x0, y0, x1, y1 in boxes:
        mask |= ((cy >= y0) & (cy < y1))[:, None] & ((cx >= x0) & (cx < x1))[None, :]
    return mask
