"""An image source over a list of image files: the shape most folder datasets take."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ganbench.data.decode import open_image
from ganbench.plugins.interfaces import ImageSource

if TYPE_CHECKING:
    from PIL.Image import Image


class FileListSource(ImageSource):
    """Images from ``paths`` (one file each), with a label per file or none.

    Paths and labels are kept as a list of str and an int32 array: ImageNet's 1.28 M
    ``Path`` objects would cost ~300 MB where the strings cost ~150 MB.
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        labels: Sequence[int] | None = None,
        classes: Sequence[str] = (),
    ) -> None:
        if labels is not None and len(labels) != len(paths):
            raise ValueError(f"{len(labels)} labels for {len(paths)} files")
        self.paths = [str(p) for p in paths]
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int32)
        self.classes = tuple(classes)

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, index: int) -> tuple[Image, int | None]:
        label = None if self.labels is None else int(self.labels[index])
        return open_image(Path(self.paths[index])), label

    def files(self) -> list[Path]:
        return [Path(p) for p in self.paths]

    def class_names(self) -> tuple[str, ...]:
        return self.classes
