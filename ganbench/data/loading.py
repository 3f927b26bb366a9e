"""Getting a split's images for a run: decoded in memory, or from the prepared cache."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ganbench.data.paths import dataset_root
from ganbench.data.prepare import BadImagePolicy, decode_into, prepare, report_skipped
from ganbench.plugins.interfaces import Dataset, DatasetRequest, ImageArray


def load_images(
    dataset: Dataset,
    request: DatasetRequest,
    cache: Path,
    *,
    bad_images: BadImagePolicy = "skip",
    progress: bool = True,
    say: Callable[[str], None] = print,
) -> ImageArray:
    """uint8 images at the requested resolution; big datasets through the prepared cache."""
    root = dataset_root(dataset.name, request.root, cache)
    if not dataset.cacheable:
        source = dataset.open(request, root)
        out = np.empty(
            (len(source), dataset.channels, request.resolution, request.resolution), dtype=np.uint8
        )
        decoded = decode_into(
            source,
            out,
            dataset.channels,
            bad_images=bad_images,
            progress=False,
            description=dataset.name,
        )
        report_skipped(decoded, say, None)
        return ImageArray(
            images=out[: decoded.count],
            labels=decoded.labels,
            source=f"{dataset.name} decoded in memory from {root}",
            class_names=source.class_names(),
        )
    data, reused = prepare(
        dataset, request, root, cache, bad_images=bad_images, progress=progress, say=say
    )
    what = f"{len(data)} images of {dataset.name} {request.split} at {request.resolution}px"
    where = data.source.removeprefix("prepared cache ")
    say(f"using prepared {what} from {where}" if reused else f"prepared {what} in {where}")
    return data
