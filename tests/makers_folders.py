"""Tiny copies of LSUN, CelebA, ImageNet and image folders in their real on-disk formats.

Each maker writes known pixels (smooth images, so JPEG keeps them within a few levels)
and returns what it wrote as :class:`Written`: per image, in the order the dataset plugin
reads them, its file (or LMDB folder and key), its pixels and its label. Reusable by any
test: ``from makers_folders import make_lsun`` (pytest puts ``tests/`` on the path).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

#: Formats :func:`encode` writes; "webp" is lossless WebP (exact pixels), "webp-lossy" not.
LOSSLESS = {"png": True, "webp": True, "jpeg": False, "webp-lossy": False}


@dataclass
class Written:
    """Images a maker wrote, index i = image i as the plugin lists it."""

    #: The file of each image; for LSUN the LMDB folder holding it.
    paths: list[Path] = field(default_factory=list)
    #: The pixels encoded (H x W x 3 uint8); None for a deliberately corrupt file.
    arrays: list[np.ndarray | None] = field(default_factory=list)
    #: The label the plugin should give (None where unlabelled).
    labels: list[int | None] = field(default_factory=list)
    #: True where the encoding is exact (PNG, lossless WebP), False for JPEG.
    lossless: list[bool] = field(default_factory=list)
    #: LSUN only: the LMDB key of each image.
    keys: list[bytes] = field(default_factory=list)
    #: Indices of the corrupt files (listed by the plugin, failing to decode).
    bad: list[int] = field(default_factory=list)
    #: Label index -> class name where the layout has classes.
    class_names: tuple[str, ...] = ()
    #: Files written that are not images and must be ignored.
    junk: list[Path] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)

    def add(self, path: Path, array: np.ndarray | None, label: int | None, fmt: str) -> None:
        self.paths.append(path)
        self.arrays.append(array)
        self.labels.append(label)
        self.lossless.append(LOSSLESS.get(fmt, False))


def smooth_image(seed: int, height: int = 20, width: int = 16) -> np.ndarray:
    """A smooth H x W x 3 uint8 image, different for every seed (mean abs diff > 20)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    channels = []
    for _ in range(3):
        fy, fx = rng.uniform(0.2, 0.8, size=2) / max(height, width)
        phase = rng.uniform(0, 2 * np.pi)
        channels.append(128 + 90 * np.sin(2 * np.pi * (fy * y + fx * x) + phase))
    return np.clip(np.rint(np.stack(channels, axis=-1)), 0, 255).astype(np.uint8)


def encode(array: np.ndarray, fmt: str) -> bytes:
    """``array`` (H x W x 3 uint8) encoded as png, jpeg (quality 95), webp (lossless)."""
    buffer = io.BytesIO()
    image = Image.fromarray(array, mode="RGB")
    if fmt == "png":
        image.save(buffer, format="PNG")
    elif fmt == "jpeg":
        image.save(buffer, format="JPEG", quality=95)
    elif fmt == "webp":
        image.save(buffer, format="WEBP", lossless=True, quality=100, exact=True)
    elif fmt == "webp-lossy":
        image.save(buffer, format="WEBP", quality=90)
    else:
        raise ValueError(f"unknown format {fmt!r}")
    return buffer.getvalue()


def truncated_jpeg(seed: int = 999) -> bytes:
    """The first 60% of a real JPEG: PIL opens the header, then fails to decode."""
    data = encode(smooth_image(seed, 32, 32), "jpeg")
    return data[: len(data) * 6 // 10]


def write_image(path: Path, array: np.ndarray, fmt: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode(array, fmt))
    return path


# --- LSUN -------------------------------------------------------------------------------


def write_lmdb(folder: Path, items: Mapping[bytes, bytes]) -> Path:
    """An LMDB database in ``folder`` (data.mdb + lock.mdb) holding ``items``."""
    import lmdb

    folder.mkdir(parents=True, exist_ok=True)
    size = sum(len(k) + len(v) for k, v in items.items())
    env = lmdb.open(str(folder), map_size=max(1 << 20, 4 * size + (1 << 16)))
    with env.begin(write=True) as txn:
        for key, value in items.items():
            txn.put(key, value)
    env.close()
    return folder


def lsun_key(category: str, i: int) -> bytes:
    """A key like the release's: the hex SHA-1 of something, as ASCII bytes."""
    return hashlib.sha1(f"{category}/{i}".encode()).hexdigest().encode("ascii")


def make_lsun(
    root: Path,
    categories: Mapping[str, tuple[str, int]] | None = None,
    split: str = "train",
    *,
    size: tuple[int, int] = (20, 16),
    corrupt: Mapping[str, int] | None = None,
    seed: int = 0,
) -> dict[str, Written]:
    """``root/<category>_<split>_lmdb/`` for each ``{category: (format, count)}``.

    Default: bedroom as 3 lossless WebP, kitchen as 2 JPEG. ``corrupt={"bedroom": 1}``
    adds that many values of garbage bytes (listed in ``Written.bad``). Returns, per
    category, the images in LMDB key order with label 0 (the label when the category is
    read alone; with several, it is the category's position in the request).
    """
    categories = categories or {"bedroom": ("webp", 3), "kitchen": ("jpeg", 2)}
    corrupt = corrupt or {}
    out = {}
    for c_index, (category, (fmt, count)) in enumerate(categories.items()):
        folder = Path(root) / f"{category}_{split}_lmdb"
        entries: dict[bytes, tuple[bytes, np.ndarray | None]] = {}
        for i in range(count):
            array = smooth_image(seed + 100 * c_index + i, *size)
            entries[lsun_key(category, i)] = (encode(array, fmt), array)
        for j in range(corrupt.get(category, 0)):
            entries[lsun_key(category, 10_000 + j)] = (b"\x00not an image\xff" * 4, None)
        write_lmdb(folder, {k: v for k, (v, _) in entries.items()})
        written = Written(class_names=(category,))
        for key in sorted(entries):  # LMDB iterates keys in byte order
            array = entries[key][1]
            written.add(folder, array, 0, fmt)
            written.keys.append(key)
            if array is None:
                written.bad.append(len(written) - 1)
        out[category] = written
    return out


# --- CelebA -----------------------------------------------------------------------------


def make_celeba(
    root: Path,
    counts: Mapping[str, int] | None = None,
    *,
    nested: bool = True,
    size: tuple[int, int] = (22, 18),
    seed: int = 100,
) -> dict[str, Written]:
    """torchvision's CelebA layout: ``root/celeba/img_align_celeba/000001.jpg ...`` plus
    ``root/celeba/list_eval_partition.txt`` (``000001.jpg 0``; 0 train, 1 valid, 2 test).

    ``nested=False`` writes into ``root`` itself (``root`` is the celeba folder). The
    splits are interleaved in the numbering (the real file is in blocks), so a reader
    that ignores the partition codes gets them wrong. Returns ``{split: Written}`` for
    train, valid, test and all, images in file-name order, labels None.
    """
    counts = dict(counts or {"train": 4, "valid": 2, "test": 3})
    base = Path(root) / "celeba" if nested else Path(root)
    codes = {"train": 0, "valid": 1, "test": 2}
    order = []  # round-robin over the splits until each has its count
    left = dict(counts)
    while any(left.values()):
        for split in codes:
            if left.get(split, 0):
                order.append(split)
                left[split] -= 1
    out = {split: Written() for split in (*codes, "all")}
    lines = []
    for number, split in enumerate(order, 1):
        name = f"{number:06d}.jpg"
        array = smooth_image(seed + number, *size)
        path = write_image(base / "img_align_celeba" / name, array, "jpeg")
        lines.append(f"{name} {codes[split]}\n")
        out[split].add(path, array, None, "jpeg")
        out["all"].add(path, array, None, "jpeg")
    (base / "list_eval_partition.txt").write_text("".join(lines))
    return out


# --- ImageNet ---------------------------------------------------------------------------

WNIDS = ("n01440764", "n01443537")


def make_imagenet(
    root: Path,
    wnids: Sequence[str] = WNIDS,
    per_class: Mapping[str, int] | None = None,
    *,
    size: tuple[int, int] = (18, 24),
    seed: int = 200,
) -> dict[str, Written]:
    """``root/train/<wnid>/<wnid>_<n>.JPEG`` and ``root/val/<wnid>/ILSVRC2012_val_<n>.JPEG``.

    ``per_class`` defaults to 3 train and 2 val images per wnid. Returns ``{split:
    Written}`` in the plugin's order (sorted wnid, then file name), label = sorted wnid
    index, class_names = the sorted wnids.
    """
    per_class = per_class or {"train": 3, "val": 2}
    classes = tuple(sorted(wnids))
    out = {}
    val_number = 0
    for split, count in per_class.items():
        written = Written(class_names=classes)
        for label, wnid in enumerate(classes):
            for i in range(count):
                if split == "val":
                    val_number += 1
                    name = f"ILSVRC2012_val_{val_number:08d}.JPEG"
                else:
                    name = f"{wnid}_{1000 + i}.JPEG"
                array = smooth_image(seed + 50 * label + i + (25 if split == "val" else 0), *size)
                path = write_image(Path(root) / split / wnid / name, array, "jpeg")
                written.add(path, array, label, "jpeg")
        out[split] = written
    return out


# --- image folders ----------------------------------------------------------------------


def make_image_folder(
    root: Path,
    classes: Sequence[str] | None = ("cats", "dogs"),
    per_class: int = 2,
    *,
    corrupt: bool = True,
    junk: bool = True,
    nested: bool = True,
    size: tuple[int, int] = (16, 20),
    seed: int = 300,
) -> Written:
    """A folder of your own images, PNG (exact) except one JPEG per folder.

    ``classes=("cats", "dogs")``: one sub-folder per class (``root/cats/0.png``...), with
    ``nested`` adding an image in a sub-sub-folder of the last class (``dogs/more/``);
    ``classes=None``: the images directly in ``root``. ``corrupt`` adds ``broken.jpg``
    (a truncated JPEG) in the first class folder (or in ``root``); ``junk`` adds
    ``notes.txt`` and an AppleDouble ``._0.png`` of garbage, which must be ignored.
    Returns the images in the plugin's order (sorted folders, a folder's own files before
    its sub-folders', sorted names); labels = class index, or None without classes.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    written = Written(class_names=tuple(sorted(classes)) if classes else ())
    folders = [(root / c, i) for i, c in enumerate(written.class_names)] or [(root, None)]
    n = 0
    for folder, label in folders:
        names = []
        for i in range(per_class):
            fmt = "jpeg" if i == per_class - 1 and per_class > 1 else "png"
            names.append((f"{i}.{'jpg' if fmt == 'jpeg' else 'png'}", fmt))
        if corrupt and folder == folders[0][0]:
            names.append(("broken.jpg", "broken"))
        for name, fmt in sorted(names):
            path = folder / name
            if fmt == "broken":
                folder.mkdir(parents=True, exist_ok=True)
                path.write_bytes(truncated_jpeg())
                written.add(path, None, label, "jpeg")
                written.bad.append(len(written) - 1)
                continue
            n += 1
            array = smooth_image(seed + n, *size)
            written.add(write_image(path, array, fmt), array, label, fmt)
        if nested and classes and folder == folders[-1][0]:
            n += 1
            array = smooth_image(seed + n, *size)
            path = write_image(folder / "more" / "deep.png", array, "png")
            written.add(path, array, label, "png")
        if junk:
            for junk_path, data in (
                (folder / "notes.txt", b"not an image\n"),
                (folder / "._0.png", b"\x00\x05\x16\x07 AppleDouble"),
            ):
                folder.mkdir(parents=True, exist_ok=True)
                junk_path.write_bytes(data)
                written.junk.append(junk_path)
    return written


def read_pixels(image: Image.Image) -> np.ndarray:
    """An image read back by a plugin, as H x W x 3 uint8."""
    return np.asarray(image.convert("RGB"))


def assert_same_image(image: Image.Image, expected: np.ndarray, lossless: bool) -> None:
    """Exact for lossless encodings; JPEG within a mean absolute error of 3 levels."""
    got = read_pixels(image)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    if lossless:
        np.testing.assert_array_equal(got, expected)
    else:
        diff = np.abs(got.astype(np.int16) - expected.astype(np.int16)).mean()
        assert diff < 3, f"mean abs diff {diff:.2f}"
