"""Tiny files in the real formats of CIFAR-10, SVHN, MNIST and Fashion-MNIST, laid out as
torchvision lays them out, with the arrays they hold, for tests that cannot download.

Every maker returns what a reader must give back: uint8 images as H x W x C (RGB) or
H x W (grey) arrays and int64 labels (SVHN's already mapped 10 -> 0).
"""

from __future__ import annotations

import gzip
import pickle
import struct
import tarfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
CIFAR10_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))

Split = tuple[np.ndarray, np.ndarray]


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _images(rng: np.random.Generator, n: int, shape: tuple[int, ...]) -> np.ndarray:
    images = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
    if n:  # make sure the extremes survive any accidental scaling
        images.reshape(n, -1)[0, :2] = (0, 255)
    return images


def _labels(rng: np.random.Generator, n: int) -> np.ndarray:
    labels = rng.integers(0, 10, size=n).astype(np.int64)
    labels[: min(n, 2)] = (0, 9)[: min(n, 2)]  # always a 0 (SVHN's 10) and a 9
    return labels


def write_cifar10_batch(
    path: Path, images: np.ndarray, labels: np.ndarray, *, bytes_keys: bool = False
) -> None:
    """One CIFAR-10 python batch: a pickled dict whose ``data`` is N x 3072 uint8 (the R,
    G and B planes of each 32x32 image, row-major) and ``labels`` a list of ints, plus the
    official ``batch_label`` and ``filenames``. ``bytes_keys`` pickles the keys as bytes."""
    n = len(images)
    entry = {
        "batch_label": f"batch written by ganbench's tests ({path.name})",
        "labels": [int(x) for x in labels],
        "data": np.ascontiguousarray(images.transpose(0, 3, 1, 2)).reshape(n, 3072),
        "filenames": [f"image_{i:05d}.png" for i in range(n)],
    }
    if bytes_keys:
        entry = {k.encode(): v for k, v in entry.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        pickle.dump(entry, fh, protocol=2)


def make_cifar10(
    root: Path,
    *,
    per_batch: int | Iterable[int] = 2,
    test: int = 3,
    seed: int = 0,
    bytes_keys: bool = False,
) -> dict[str, Split]:
    """``root/cifar-10-batches-py/`` with data_batch_1..5, test_batch and batches.meta.

    ``per_batch`` is the number of images in each training batch (one int for all five,
    or five ints). Returns ``{"train": (images, labels), "test": (images, labels)}`` with
    images N x 32 x 32 x 3 uint8 in the order a reader yields them.
    """
    rng = _rng(seed)
    folder = Path(root) / CIFAR10_FOLDER
    counts = [per_batch] * 5 if isinstance(per_batch, int) else list(per_batch)
    assert len(counts) == 5, "CIFAR-10 has five training batches"
    train_images, train_labels = [], []
    for name, n in zip(CIFAR10_TRAIN_BATCHES, counts, strict=True):
        images, labels = _images(rng, n, (32, 32, 3)), _labels(rng, n)
        write_cifar10_batch(folder / name, images, labels, bytes_keys=bytes_keys)
        train_images.append(images)
        train_labels.append(labels)
    test_images, test_labels = _images(rng, test, (32, 32, 3)), _labels(rng, test)
    write_cifar10_batch(folder / "test_batch", test_images, test_labels, bytes_keys=bytes_keys)
    meta = {"num_cases_per_batch": 10000, "label_names": list(CIFAR10_CLASSES), "num_vis": 3072}
    if bytes_keys:
        meta = {k.encode(): v for k, v in meta.items()}
    with (folder / "batches.meta").open("wb") as fh:
        pickle.dump(meta, fh, protocol=2)
    return {
        "train": (np.concatenate(train_images), np.concatenate(train_labels)),
        "test": (test_images, test_labels),
    }


def make_cifar10_tarball(path: Path, **kwargs) -> dict[str, Split]:
    """``path`` (e.g. ``cifar-10-python.tar.gz``): a gzipped tar holding
    ``cifar-10-batches-py/`` as the official archive does; ``kwargs`` go to
    :func:`make_cifar10`. Returns its arrays."""
    path = Path(path)
    staging = path.parent / f".{path.name}.staging"
    arrays = make_cifar10(staging, **kwargs)
    with tarfile.open(path, "w:gz") as tar:
        tar.add(staging / CIFAR10_FOLDER, arcname=CIFAR10_FOLDER)
    for file in sorted((staging / CIFAR10_FOLDER).iterdir()):
        file.unlink()
    (staging / CIFAR10_FOLDER).rmdir()
    staging.rmdir()
    return arrays


def make_svhn(root: Path, split: str = "train", *, n: int = 5, seed: int = 0) -> Split:
    """``root/<split>_32x32.mat`` as the official files: ``X`` 32 x 32 x 3 x N uint8 and
    ``y`` N x 1 uint8 with 10 for the digit 0. Returns (images N x 32 x 32 x 3, labels
    with 0 for the digit 0)."""
    import scipy.io

    rng = _rng(seed)
    images, labels = _images(rng, n, (32, 32, 3)), _labels(rng, n)
    y = np.where(labels == 0, 10, labels).astype(np.uint8).reshape(n, 1)
    Path(root).mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(Path(root) / f"{split}_32x32.mat", {"X": images.transpose(1, 2, 3, 0), "y": y})
    return images, labels


def write_idx_images(path: Path, images: np.ndarray) -> None:
    """An idx3-ubyte file: big-endian magic 2051, N, rows, cols, then the uint8 pixels."""
    n, rows, cols = images.shape
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack(">4I", 2051, n, rows, cols) + images.astype(np.uint8).tobytes())


def write_idx_labels(path: Path, labels: np.ndarray) -> None:
    """An idx1-ubyte file: big-endian magic 2049, N, then one uint8 label each."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack(">2I", 2049, len(labels)) + labels.astype(np.uint8).tobytes())


def mnist_file_names(split: str) -> tuple[str, str]:
    """The uncompressed (images, labels) file names of ``split`` ("train" or "test")."""
    prefix = {"train": "train", "test": "t10k"}[split]
    return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"


def make_mnist(
    root: Path, *, folder: str = "MNIST", train: int = 4, test: int = 3, seed: int = 0
) -> dict[str, Split]:
    """The four uncompressed idx files in ``root/<folder>/raw/`` (``folder`` "MNIST" or
    "FashionMNIST", torchvision's layout). Returns ``{"train": (images, labels), "test":
    (images, labels)}`` with images N x 28 x 28 uint8."""
    rng = _rng(seed)
    raw = Path(root) / folder / "raw"
    out = {}
    for split, n in (("train", train), ("test", test)):
        images, labels = _images(rng, n, (28, 28)), _labels(rng, n)
        image_file, label_file = mnist_file_names(split)
        write_idx_images(raw / image_file, images)
        write_idx_labels(raw / label_file, labels)
        out[split] = (images, labels)
    return out


def gzip_files(paths: Iterable[Path], dest: Path, *, prefix: str = "") -> list[Path]:
    """Gzip each file into ``dest/<prefix><name>.gz`` (as the MNIST downloads come);
    returns the new files."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for path in map(Path, paths):
        target = dest / f"{prefix}{path.name}.gz"
        target.write_bytes(gzip.compress(path.read_bytes()))
        out.append(target)
    return out


def truncate(path: Path, keep: float = 0.5) -> Path:
    """Cut ``path`` to the first ``keep`` fraction of its bytes (a broken download)."""
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: int(len(data) * keep)])
    return Path(path)
