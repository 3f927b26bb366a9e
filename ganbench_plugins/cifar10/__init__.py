"""CIFAR-10: 60,000 32x32 colour images in 10 classes (50,000 train, 10,000 test).

Reads torchvision's on-disk layout, ``ROOT/cifar-10-batches-py/`` (the official python
tarball extracted), so ``--data-root`` can point at an existing torchvision root.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ganbench.errors import DatasetNotFoundError, GanbenchError
from ganbench.plugins.hookspecs import hookimpl
from ganbench.plugins.interfaces import Dataset, DatasetRequest, ImageSource, RemoteFile
from ganbench.plugins.registry import Registrar

if TYPE_CHECKING:
    from PIL import Image

# The same values as torchvision.datasets.CIFAR10's class attributes (a test checks);
# copied so that importing this plugin does not import torchvision.
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE = "cifar-10-python.tar.gz"
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
BASE_FOLDER = "cifar-10-batches-py"
SPLIT_FILES = {
    "train": ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5"),
    "test": ("test_batch",),
}
META_FILE = "batches.meta"
SIDE = 32


class Cifar10Dataset(Dataset):
    name = "cifar10"
    summary = "CIFAR-10: 32x32 colour photos in 10 classes (50,000 train, 10,000 test)"
    channels = 3
    num_classes = 10
    default_resolution = 32
    resolutions = (16, 32, 64)
    splits = ("train", "test")
    license = (
        "no formal license; the authors ask that work using the dataset cite"
        " Krizhevsky (2009). The images come from the 80 Million Tiny Images collection"
    )
    citation = (
        "Krizhevsky, A. (2009). Learning Multiple Layers of Features from Tiny Images."
        " Technical report, University of Toronto."
        " https://www.cs.toronto.edu/~kriz/learning-features-2009-TR.pdf"
    )
    obtain = (
        "downloaded by `ganbench data download cifar10` from"
        f" {URL} (163 MB, md5-checked) and extracted to ROOT/{BASE_FOLDER}/;"
        " or pass --data-root pointing at a torchvision root that holds that folder"
    )

    def remote_files(self, split: str) -> tuple[RemoteFile, ...]:
        self.check_split(split)
        return (RemoteFile(URL, ARCHIVE, md5=ARCHIVE_MD5),)  # one archive holds both splits

    def unpack(self, downloaded: Sequence[Path], root: Path) -> None:
        import shutil
        import tempfile

        from torchvision.datasets.utils import extract_archive

        from ganbench.files.sealed import fsync_folder, fsync_tree

        folder = Path(root) / BASE_FOLDER
        for path in downloaded:
            if Path(path).name != ARCHIVE or folder.is_dir():
                continue  # the folder only ever appears whole (below): extracted before
            # Extract beside the final place and rename: an interrupted extraction leaves
            # only a temporary folder, never a BASE_FOLDER with truncated batches in it.
            with tempfile.TemporaryDirectory(dir=root, prefix=".extract-") as tmp:
                try:
                    extract_archive(str(path), tmp)
                except Exception as exc:  # tarfile/zlib/OS errors: say which archive
                    raise GanbenchError(
                        f"cannot extract {path} into {root}: {exc}. Delete the archive and"
                        " run `ganbench data download cifar10` again"
                    ) from exc
                if not (Path(tmp) / BASE_FOLDER).is_dir():
                    raise GanbenchError(
                        f"{path} holds no {BASE_FOLDER}/ folder; it is not the CIFAR-10"
                        " python archive. Delete it and run `ganbench data download cifar10`"
                    )
                # Flushed before the rename that makes it visible, and the rename after it:
                # after a power cut the folder is there whole or not at all.
                fsync_tree(Path(tmp) / BASE_FOLDER)
                shutil.move(str(Path(tmp) / BASE_FOLDER), folder)  # one filesystem: a rename
                fsync_folder(Path(root))

    def open(self, request: DatasetRequest, root: Path) -> ImageSource:
        self.check_split(request.split)
        names = (*SPLIT_FILES[request.split], META_FILE)
        folder = Path(root) / BASE_FOLDER
        paths = [folder / n for n in names]
        missing = [p.name for p in paths if not p.is_file()]
        if missing:
            raise DatasetNotFoundError(
                f"cifar10 {request.split} split not found in {root}: expected"
                f" {BASE_FOLDER}/{{{','.join(names)}}} there (torchvision's layout), missing"
                f" {', '.join(missing)}. Run `ganbench data download cifar10`, or pass"
                f" --data-root FOLDER where FOLDER/{BASE_FOLDER}/ holds the files"
            )
        return _CifarSource(paths[:-1], paths[-1])


def _unpickle(path: Path) -> dict[str, Any]:
    """One pickled batch as a dict with str keys.

    The official batches were pickled by Python 2: ``latin1`` turns their byte strings
    (keys, numpy buffers) back into what they were, as torchvision does. Keys pickled as
    bytes by a Python 3 re-export are accepted too.
    """
    import pickle

    try:
        with path.open("rb") as fh:
            entry = pickle.load(fh, encoding="latin1")
    except Exception as exc:  # truncated or not a pickle: EOFError, UnpicklingError, ...
        raise _corrupt(path, f"{type(exc).__name__}: {exc}") from None
    if not isinstance(entry, dict):
        raise _corrupt(path, f"it holds a {type(entry).__name__}, not a dict")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in entry.items()}


def _corrupt(path: Path, why: str) -> DatasetNotFoundError:
    return DatasetNotFoundError(
        f"{path} is truncated or not a CIFAR-10 python batch ({why}). Delete"
        f" {path.parent} and run `ganbench data download cifar10` again"
    )


class _CifarSource(ImageSource):
    # torchvision.datasets.CIFAR10 md5-checks every official file on every load, which
    # rejects any other copy of the data (a re-export, our test files); the format is a
    # pickled dict per batch, so it is read here directly, exactly as torchvision reads it.
    # ganbench's own download checks the archive's md5 once.

    def __init__(self, batches: list[Path], meta: Path) -> None:
        import numpy as np

        self._batches, self._meta = batches, meta
        data, labels = [], []
        for path in batches:
            entry = _unpickle(path)
            pixels = entry.get("data")
            targets = entry.get("labels", entry.get("fine_labels"))
            if pixels is None or targets is None:
                raise _corrupt(path, f"keys {sorted(map(str, entry))} lack 'data'/'labels'")
            pixels = np.asarray(pixels)
            if pixels.dtype != np.uint8 or pixels.ndim != 2 or pixels.shape[1] != 3 * SIDE**2:
                raise _corrupt(path, f"data is {pixels.dtype} {pixels.shape}, not uint8 N x 3072")
            if len(targets) != len(pixels):
                raise _corrupt(path, f"{len(targets)} labels for {len(pixels)} images")
            data.append(pixels)
            labels.extend(targets)
        # rows are the R, G and B planes one after the other, each 32x32 row-major
        self._images = np.concatenate(data).reshape(-1, 3, SIDE, SIDE).transpose(0, 2, 3, 1)
        self._labels = np.asarray(labels, dtype=np.int64)
        names = _unpickle(meta).get("label_names")
        if not isinstance(names, list) or len(names) != Cifar10Dataset.num_classes:
            raise _corrupt(meta, "no list of 10 'label_names'")
        self._names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)

    def __len__(self) -> int:
        return len(self._images)

    def read(self, index: int) -> tuple[Image.Image, int | None]:
        import numpy as np
        from PIL import Image

        pixels = np.ascontiguousarray(self._images[index])
        return Image.fromarray(pixels), int(self._labels[index])  # H x W x 3 uint8: RGB

    def files(self) -> list[Path]:
        return [*self._batches, self._meta]

    def class_names(self) -> tuple[str, ...]:
        return self._names


@hookimpl
def ganbench_register_datasets(registry: Registrar[Dataset]) -> None:
    registry.add(Cifar10Dataset())
