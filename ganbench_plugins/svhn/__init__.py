"""SVHN (Street View House Numbers), cropped digits: 32x32 colour images of the digits 0-9.

73,257 train, 26,032 test and 531,131 "extra" (easier) images. Reads torchvision's
on-disk layout, ``ROOT/{train,test,extra}_32x32.mat`` (the official MATLAB files).

Two more splits are cut from train_32x32.mat as the DCGAN authors cut it for their SVHN
probe (:mod:`ganbench_plugins.svhn.authors_valid`): "valid", their 10,000 validation
images, and "train-minus-valid", the other 63,257, both in the authors' shuffled order.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ganbench.errors import DatasetNotFoundError
from ganbench.plugins.hookspecs import hookimpl
from ganbench.plugins.interfaces import Dataset, DatasetRequest, ImageSource, RemoteFile
from ganbench.plugins.registry import Registrar
from ganbench_plugins.svhn.authors_valid import AUTHORS_SPLITS, AuthorsSplitSource

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

# url, filename, md5 per split: the same as torchvision.datasets.SVHN.split_list (a test
# checks); copied so that importing this plugin does not import torchvision.
SPLIT_LIST = {
    "train": (
        "http://ufldl.stanford.edu/housenumbers/train_32x32.mat",
        "train_32x32.mat",
        "e26dedcc434d2e4c54c9b2d4a06d8373",
    ),
    "test": (
        "http://ufldl.stanford.edu/housenumbers/test_32x32.mat",
        "test_32x32.mat",
        "eb5a983be6a315427106f1b164d9cef3",
    ),
    "extra": (
        "http://ufldl.stanford.edu/housenumbers/extra_32x32.mat",
        "extra_32x32.mat",
        "a93ce644f1a588dc4d68dda5feec44a7",
    ),
}
SIDE = 32


def file_split(split: str) -> str:
    """The official file a split reads: the authors' splits are cut from the train file."""
    return "train" if split in AUTHORS_SPLITS else split


class SvhnDataset(Dataset):
    name = "svhn"
    summary = "SVHN cropped digits: 32x32 colour house-number photos, 10 classes"
    channels = 3
    num_classes = 10
    default_resolution = 32
    resolutions = (16, 32, 64)
    splits = ("train", "test", "extra", *AUTHORS_SPLITS)
    license = (
        "non-commercial use only (as stated on the SVHN website,"
        " http://ufldl.stanford.edu/housenumbers/); cite Netzer et al. (2011)"
    )
    citation = (
        "Netzer, Y., Wang, T., Coates, A., Bissacco, A., Wu, B. and Ng, A. Y. (2011)."
        " Reading Digits in Natural Images with Unsupervised Feature Learning."
        " NIPS Workshop on Deep Learning and Unsupervised Feature Learning 2011."
    )
    obtain = (
        "downloaded by `ganbench data download svhn` from"
        " http://ufldl.stanford.edu/housenumbers/ ({train,test,extra}_32x32.mat: 182 MB,"
        " 64 MB, 1.3 GB; md5-checked) into ROOT; or pass --data-root pointing at a"
        " torchvision root that holds those files. Splits valid (10,000) and"
        " train-minus-valid (63,257) are the DCGAN authors' cut of train_32x32.mat"
    )

    def remote_files(self, split: str) -> tuple[RemoteFile, ...]:
        self.check_split(split)
        url, filename, md5 = SPLIT_LIST[file_split(split)]
        return (RemoteFile(url, filename, md5=md5),)

    def open(self, request: DatasetRequest, root: Path) -> ImageSource:
        self.check_split(request.split)
        _, filename, _ = SPLIT_LIST[file_split(request.split)]
        path = Path(root) / filename
        if not path.is_file():
            raise DatasetNotFoundError(
                f"svhn {request.split} split not found: expected {filename} in {root}"
                " (torchvision's layout: ROOT/{train,test,extra}_32x32.mat). Run"
                f" `ganbench data download svhn --split {request.split}`, or pass --data-root"
                f" FOLDER holding {filename}"
            )
        source = _SvhnSource(path)
        if request.split in AUTHORS_SPLITS:
            return AuthorsSplitSource(source, request.split, path)
        return source


def _corrupt(path: Path, why: str) -> DatasetNotFoundError:
    return DatasetNotFoundError(
        f"{path} is truncated or not an SVHN .mat file ({why}). Delete it and run"
        f" `ganbench data download svhn` again"
    )


class _SvhnSource(ImageSource):
    # torchvision.datasets.SVHN md5-checks the official file on every load, which rejects
    # any other copy (and our test files), so the .mat is read here directly the way
    # torchvision reads it: X is 32 x 32 x 3 x N uint8, y is N x 1 with 10 for the digit 0.
    # ganbench's own download checks the md5 once. The header alone gives the count, so
    # `data info` does not load the 1.3 GB extra split; the arrays load on the first read.

    def __init__(self, path: Path) -> None:
        import scipy.io

        self._path = path
        self._images: np.ndarray | None = None
        self._labels: np.ndarray | None = None
        try:
            shapes = {name: shape for name, shape, _ in scipy.io.whosmat(path)}
        except Exception as exc:  # scipy raises several types for a cut or foreign file
            raise _corrupt(path, f"{type(exc).__name__}: {exc}") from None
        x, y = shapes.get("X"), shapes.get("y")
        if x is None or y is None:
            raise _corrupt(path, f"variables {sorted(shapes)} lack 'X'/'y'")
        if len(x) != 4 or tuple(x[:3]) != (SIDE, SIDE, 3) or y[0] * y[1] != x[3]:
            raise _corrupt(path, f"X is {x} and y is {y}, not 32x32x3xN and Nx1")
        self._count = int(x[3])

    def _load(self) -> tuple[np.ndarray, np.ndarray]:
        if self._images is None or self._labels is None:
            import numpy as np
            import scipy.io

            try:
                mat = scipy.io.loadmat(self._path, variable_names=["X", "y"])
            except Exception as exc:
                raise _corrupt(self._path, f"{type(exc).__name__}: {exc}") from None
            images, labels = mat.get("X"), mat.get("y")
            if images is None or labels is None:
                raise _corrupt(self._path, "'X' or 'y' cannot be read")
            if images.dtype != np.uint8 or images.shape != (SIDE, SIDE, 3, self._count):
                raise _corrupt(self._path, f"X is {images.dtype} {images.shape}")
            labels = labels.astype(np.int64).reshape(-1)
            if labels.shape != (self._count,):
                raise _corrupt(self._path, f"{labels.size} labels for {self._count} images")
            labels[labels == 10] = 0  # SVHN labels the digit 0 as 10; torchvision maps it to 0
            self._images, self._labels = images, labels
        return self._images, self._labels

    def __len__(self) -> int:
        return self._count

    def read(self, index: int) -> tuple[Image.Image, int | None]:
        import numpy as np
        from PIL import Image

        images, labels = self._load()
        pixels = np.ascontiguousarray(images[:, :, :, index])  # H x W x 3 uint8: RGB
        return Image.fromarray(pixels), int(labels[index])

    def files(self) -> list[Path]:
        return [self._path]

    def class_names(self) -> tuple[str, ...]:
        return tuple(str(d) for d in range(10))


@hookimpl
def ganbench_register_datasets(registry: Registrar[Dataset]) -> None:
    registry.add(SvhnDataset())
