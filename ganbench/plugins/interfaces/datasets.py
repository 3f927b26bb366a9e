"""The interfaces a dataset plugin implements (:class:`Dataset`, :class:`ImageSource`) and
the types it is given and returns (:class:`DatasetRequest`, :class:`RemoteFile`,
:class:`ImageArray`).

No numpy, PIL or torch at module level (only under ``TYPE_CHECKING``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from ganbench.plugins.interfaces.common import ImageShape

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np
    from PIL.Image import Image as PILImage


@dataclass
class ImageArray:
    """Images as the core consumes them: uint8 NCHW (possibly memory-mapped) plus labels.

    Keeping uint8 until the batch is on its device makes data 4x smaller to move and lets
    one prepared array serve any run; scaling to [-1, 1] happens on the device.
    """

    images: np.ndarray
    labels: np.ndarray | None = None
    #: Where the images came from, for the run's log (a path, a package, a cache file).
    source: str = ""
    class_names: tuple[str, ...] = ()
    #: How the array was made, beyond ``source``, as params a run logs (e.g. near
    #: duplicates skipped).
    notes: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or str(self.images.dtype) != "uint8":
            raise ValueError(
                f"images must be a uint8 N x C x H x W array, got {self.images.dtype}"
                f" with shape {tuple(self.images.shape)}"
            )
        if self.labels is not None and len(self.labels) != len(self.images):
            raise ValueError(f"{len(self.labels)} labels for {len(self.images)} images")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def shape(self) -> ImageShape:
        return ImageShape(channels=self.images.shape[1], resolution=self.images.shape[2])


@dataclass(frozen=True)
class DatasetRequest:
    """What a run asks a dataset for."""

    split: str
    resolution: int
    #: Folder holding the dataset's files (``--data-root``); None = ganbench's cache folder.
    root: str | None = None
    #: Dataset-specific choices, e.g. ``{"category": "bedroom"}`` for LSUN.
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RemoteFile:
    """A file a dataset can download: where from, what to call it, how to verify it."""

    url: str
    filename: str
    md5: str | None = None
    sha256: str | None = None
    #: Bytes, when known: a short file is reported as truncated (and kept to resume).
    size: int | None = None


class ImageSource(ABC):
    """The raw images of one split, decoded one at a time: what preparation reads.

    Plugins wrap the real file format here (torchvision's dataset classes where they
    exist); the core does the cropping, resizing and caching, the same for every dataset.
    """

    @abstractmethod
    def __len__(self) -> int:
        """Number of images in the split."""

    @abstractmethod
    def read(self, index: int) -> tuple[PILImage, int | None]:
        """Image ``index`` decoded (any size and mode) and its label (None if unlabelled).

        Raises :class:`ganbench.errors.BadImageError` naming the file (or LMDB key) when
        the image cannot be decoded, so the caller can skip it or stop.
        """

    @abstractmethod
    def files(self) -> list[Path]:
        """The files this split reads (for ``data info`` and the cache fingerprint)."""

    def class_names(self) -> tuple[str, ...]:
        """Label index -> class name, where the dataset has names."""
        return ()


class Dataset(ABC):
    """An image dataset, described well enough for a user to cite and obtain it."""

    name: ClassVar[str]
    summary: ClassVar[str]
    channels: ClassVar[int]
    #: None when the dataset has no labels.
    num_classes: ClassVar[int | None]
    default_resolution: ClassVar[int]
    resolutions: ClassVar[tuple[int, ...]]
    splits: ClassVar[tuple[str, ...]]
    license: ClassVar[str]
    citation: ClassVar[str]
    #: How to obtain the files: downloaded by ganbench, by hand (from where, put where), or
    #: shipped with a package.
    obtain: ClassVar[str]
    #: Sub-sets chosen with ``--category`` (LSUN scenes); empty when there are none.
    categories: ClassVar[tuple[str, ...]] = ()
    #: False for small datasets decoded in memory each time (no prepared cache on disk).
    cacheable: ClassVar[bool] = True
    #: True when the files ship inside an installed package (nothing to obtain).
    bundled: ClassVar[bool] = False
    #: The feature extractor its FID/IS are computed with unless another is asked for.
    default_extractor: ClassVar[str] = "inception-v3"

    def check_split(self, split: str) -> None:
        """Raise a :class:`ganbench.errors.UsageError` naming the splits for an unknown one."""
        if split not in self.splits:
            from ganbench.errors import UsageError

            raise UsageError(
                f"{self.name} has no split {split!r}; use one of {', '.join(self.splits)}"
            )

    def remote_files(self, split: str) -> tuple[RemoteFile, ...]:
        """Files ``ganbench data download`` fetches for ``split``; empty = obtain by hand."""
        return ()

    def unpack(self, downloaded: Sequence[Path], root: Path) -> None:
        """Turn verified downloads in ``root`` into the layout :meth:`open` reads
        (extract an archive, decompress idx files). Default: nothing to do."""
        return None

    @abstractmethod
    def open(self, request: DatasetRequest, root: Path) -> ImageSource:
        """The split's images under ``root``.

        Raises :class:`ganbench.errors.DatasetNotFoundError` naming the folder, the layout
        expected and how to obtain the files, or :class:`ganbench.errors.UsageError` for a
        split or category the dataset does not have.
        """
