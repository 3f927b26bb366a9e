"""MNIST and Fashion-MNIST: 28x28 grey images in 10 classes (60,000 train, 10,000 test).

Both come as the same big-endian idx files, read with torchvision's own MNIST classes
from torchvision's on-disk layout: ``ROOT/MNIST/raw/`` resp. ``ROOT/FashionMNIST/raw/``
holding ``{train,t10k}-{images-idx3,labels-idx1}-ubyte`` (uncompressed).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from ganbench.errors import DatasetNotFoundError, GanbenchError
from ganbench.files.sealed import atomic_path
from ganbench.plugins.hookspecs import hookimpl
from ganbench.plugins.interfaces import Dataset, DatasetRequest, ImageSource, RemoteFile
from ganbench.plugins.registry import Registrar

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

# The same values as torchvision.datasets.MNIST / FashionMNIST's ``mirrors`` and
# ``resources`` (a test checks); copied so that importing this plugin stays cheap.
MNIST_MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"  # torchvision's first mirror
MNIST_RESOURCES = (
    ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
    ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
    ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
)
FASHION_MIRROR = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FASHION_RESOURCES = (
    ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
    ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
    ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
    ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
)
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
#: split -> file prefix in the idx file names
PREFIX = {"train": "train", "test": "t10k"}
IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049  # idx: 0x08 (uint8) type, 3 resp. 1 dimensions
SIDE = 28


def idx_names(split: str) -> tuple[str, str]:
    """The uncompressed image and label file names of ``split``."""
    return f"{PREFIX[split]}-images-idx3-ubyte", f"{PREFIX[split]}-labels-idx1-ubyte"


class _IdxDataset(Dataset):
    """What MNIST and Fashion-MNIST share: the files, their layout, the reading."""

    channels = 1
    num_classes = 10
    default_resolution = 32  # DCGAN's 32x32 variant; the core upsamples the 28x28 images
    resolutions = (16, 32, 64)
    splits = ("train", "test")
    #: torchvision's class for this dataset; also the folder under ROOT (ROOT/<folder>/raw)
    torchvision_class: ClassVar[str]
    mirror: ClassVar[str]
    resources: ClassVar[tuple[tuple[str, str], ...]]
    #: label index -> class name
    classes: ClassVar[tuple[str, ...]]

    def raw_folder(self, root: Path) -> Path:
        return Path(root) / self.torchvision_class / "raw"

    def remote_files(self, split: str) -> tuple[RemoteFile, ...]:
        self.check_split(split)
        # All four files whatever the split: torchvision's reader requires both splits'
        # files to be present (they are 11 MB resp. 30 MB together). They are saved flat in
        # ROOT, prefixed with the folder name so that MNIST and Fashion-MNIST can share a
        # torchvision root; unpack() decompresses them into ROOT/<folder>/raw/.
        return tuple(
            RemoteFile(self.mirror + name, f"{self.torchvision_class}-{name}", md5=md5)
            for name, md5 in self.resources
        )

    def unpack(self, downloaded: Sequence[Path], root: Path) -> None:
        import gzip
        import shutil

        raw = self.raw_folder(root)
        prefix = f"{self.torchvision_class}-"
        for path in map(Path, downloaded):
            if not (path.name.startswith(prefix) and path.name.endswith(".gz")):
                continue
            raw.mkdir(parents=True, exist_ok=True)
            target = raw / path.name.removeprefix(prefix).removesuffix(".gz")
            try:  # whole or not at all: open() trusts any file it finds in raw/
                with (
                    atomic_path(target) as part,  # renamed once dst is closed (exits last)
                    gzip.open(path, "rb") as src,
                    part.open("wb") as dst,
                ):
                    shutil.copyfileobj(src, dst, 1 << 20)
            except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
                raise GanbenchError(
                    f"cannot decompress {path} into {raw}: {exc}. Delete it and run"
                    f" `ganbench data download {self.name}` again"
                ) from None

    def open(self, request: DatasetRequest, root: Path) -> ImageSource:
        self.check_split(request.split)
        raw = self.raw_folder(root)
        # torchvision's MNIST class insists on both splits' files, whichever it reads
        needed = [name for split in self.splits for name in idx_names(split)]
        missing = [n for n in needed if not (raw / n).is_file()]
        if missing:
            lacking = (
                "none of them is there" if missing == needed else f"missing {', '.join(missing)}"
            )
            raise DatasetNotFoundError(
                f"{self.name} files not found in {raw}: expected the uncompressed idx files"
                f" {', '.join(needed)} there (torchvision's layout:"
                f" ROOT/{self.torchvision_class}/raw/), {lacking}."
                f" Run `ganbench data download {self.name}`, or pass --data-root FOLDER where"
                f" FOLDER/{self.torchvision_class}/raw/ holds the files"
            )
        images, labels = (raw / n for n in idx_names(request.split))
        count = _check_idx(images, IMAGE_MAGIC, (SIDE, SIDE), self.name)
        if _check_idx(labels, LABEL_MAGIC, (), self.name) != count:
            raise DatasetNotFoundError(
                f"{images} and {labels} do not belong together (different numbers of"
                f" entries). Delete {raw} and run `ganbench data download {self.name}` again"
            )
        return _IdxSource(self, Path(root), request.split == "train", images, labels)


def _check_idx(path: Path, magic: int, item_shape: tuple[int, ...], dataset: str) -> int:
    """The number of entries in the idx file, after checking its header and size.

    torchvision's reader gives an anonymous assertion or reshape error for a truncated
    file; this names the file.
    """
    import struct

    dims = 1 + len(item_shape)
    with path.open("rb") as fh:
        header = fh.read(4 * (1 + dims))
    fix = f"Delete it and run `ganbench data download {dataset}` again"
    found = struct.unpack(">I", header[:4])[0] if len(header) >= 4 else None
    if found is not None and found != magic:
        raise DatasetNotFoundError(
            f"{path} is not an idx file of {'x'.join(map(str, item_shape)) or 'scalar'} uint8"
            f" items (magic number {found}, expected {magic}). {fix}"
        )
    if len(header) < 4 * (1 + dims):
        raise DatasetNotFoundError(f"{path} is truncated (no complete idx header). {fix}")
    _, *shape = struct.unpack(f">{1 + dims}I", header)
    if tuple(shape[1:]) != item_shape:
        raise DatasetNotFoundError(
            f"{path} holds items of shape {tuple(shape[1:])}, not {item_shape}. {fix}"
        )
    size, expected = path.stat().st_size, len(header) + _prod(shape)
    if size != expected:
        raise DatasetNotFoundError(
            f"{path} is truncated or corrupt: {size} bytes, but its header promises"
            f" {expected}. {fix}"
        )
    return shape[0]


def _prod(values: Sequence[int]) -> int:
    out = 1
    for v in values:
        out *= v
    return out


class _IdxSource(ImageSource):
    def __init__(
        self, dataset: _IdxDataset, root: Path, train: bool, images: Path, labels: Path
    ) -> None:
        import torchvision.datasets

        # torchvision's own reader (it only checks that the files exist, no checksum)
        cls = getattr(torchvision.datasets, dataset.torchvision_class)
        try:
            tv = cls(str(root), train=train, download=False)
        except Exception as exc:
            raise DatasetNotFoundError(
                f"torchvision cannot read {images} / {labels}: {type(exc).__name__}: {exc}."
                f" Delete them and run `ganbench data download {dataset.name}` again"
            ) from None
        self._images: np.ndarray = tv.data.numpy()
        self._labels: np.ndarray = tv.targets.numpy()
        self._files = [images, labels]
        self._names = dataset.classes

    def __len__(self) -> int:
        return len(self._images)

    def read(self, index: int) -> tuple[Image.Image, int | None]:
        from PIL import Image

        return Image.fromarray(self._images[index]), int(self._labels[index])  # 28x28 'L'

    def files(self) -> list[Path]:
        return list(self._files)

    def class_names(self) -> tuple[str, ...]:
        return self._names


class MnistDataset(_IdxDataset):
    name = "mnist"
    summary = "MNIST handwritten digits: 28x28 grey, 10 classes (60,000 train, 10,000 test)"
    license = "CC BY-SA 3.0 (Yann LeCun and Corinna Cortes)"
    citation = (
        "LeCun, Y., Bottou, L., Bengio, Y. and Haffner, P. (1998). Gradient-based learning"
        " applied to document recognition. Proceedings of the IEEE, 86(11), 2278-2324."
    )
    obtain = (
        f"downloaded by `ganbench data download mnist` from {MNIST_MIRROR} (torchvision's"
        " mirror of http://yann.lecun.com/exdb/mnist/; four .gz files, 11 MB, md5-checked)"
        " and decompressed into ROOT/MNIST/raw/; or pass --data-root pointing at a"
        " torchvision root that holds MNIST/raw/"
    )
    torchvision_class = "MNIST"
    mirror = MNIST_MIRROR
    resources = MNIST_RESOURCES
    classes = tuple(str(d) for d in range(10))


class FashionMnistDataset(_IdxDataset):
    name = "fashion-mnist"
    summary = "Fashion-MNIST (Zalando): 28x28 grey clothing images, 10 classes (60,000/10,000)"
    license = "MIT (Copyright (c) 2017 Zalando SE)"
    citation = (
        "Xiao, H., Rasul, K. and Vollgraf, R. (2017). Fashion-MNIST: a Novel Image Dataset"
        " for Benchmarking Machine Learning Algorithms. arXiv:1708.07747."
    )
    obtain = (
        f"downloaded by `ganbench data download fashion-mnist` from {FASHION_MIRROR}"
        " (four .gz files, 30 MB, md5-checked) and decompressed into"
        " ROOT/FashionMNIST/raw/; or pass --data-root pointing at a torchvision root that"
        " holds FashionMNIST/raw/"
    )
    torchvision_class = "FashionMNIST"
    mirror = FASHION_MIRROR
    resources = FASHION_RESOURCES
    classes = FASHION_CLASSES


@hookimpl
def ganbench_register_datasets(registry: Registrar[Dataset]) -> None:
    registry.add(MnistDataset())
    registry.add(FashionMnistDataset())
