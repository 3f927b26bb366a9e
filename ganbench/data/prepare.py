"""Decoding a split once into a compact cache: uint8 N x C x R x R, memory-mapped.

A prepared cache is a folder ``<cache>/prepared/<dataset>/<split>[-<category>]-<R>px``
with ``images.npy``, ``labels.npy``, ``bad_images.txt`` and, written last,
``manifest.json``. It is built in a temporary folder and renamed into place, and it is
trusted only when its manifest exists and its fingerprint of the source files (names,
sizes, modification times) still matches: an interrupted preparation, or files changed
since, are never used.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

import ganbench
from ganbench.data.transform import to_array
from ganbench.errors import BadImageError, GanbenchError
from ganbench.interfaces import Dataset, DatasetRequest, ImageArray, ImageSource
from ganbench.progress import ItemProgress
from ganbench.sealed import sealed_folder

FORMAT = "ganbench-prepared/1"
BadImagePolicy = Literal["skip", "stop"]


def category_of(request: DatasetRequest) -> str | None:
    category = request.options.get("category")
    return str(category) if category else None


def cache_folder(cache: Path, dataset: Dataset, request: DatasetRequest) -> Path:
    category = category_of(request)
    tag = f"{request.split}-{category.replace(',', '+')}" if category else request.split
    return cache / "prepared" / dataset.name / f"{tag}-{request.resolution}px"


def fingerprint(files: list[Path]) -> str:
    """Changes when any source file is added, removed, resized or rewritten."""
    h = hashlib.sha256()
    for path in sorted(files):
        stat = path.stat()
        h.update(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return h.hexdigest()


@dataclass
class Decoded:
    """What a decoding pass produced."""

    count: int
    labels: np.ndarray | None
    skipped: list[tuple[str, str]] = field(default_factory=list)


def decode_into(
    source: ImageSource,
    out: np.ndarray,
    channels: int,
    *,
    bad_images: BadImagePolicy,
    progress: bool,
    description: str,
) -> Decoded:
    """Decode, crop and resize every image of ``source`` into ``out`` (N x C x R x R)."""
    resolution = out.shape[-1]
    labels = np.full(len(source), -1, dtype=np.int64)
    has_labels = False
    skipped: list[tuple[str, str]] = []
    n = 0
    with ItemProgress(len(source), description, enabled=progress) as bar:
        for i in range(len(source)):
            try:
                image, label = source.read(i)
            except BadImageError as exc:
                if bad_images == "stop":
                    raise BadImageError(
                        exc.where, f"{exc.reason} (pass --bad-images skip to skip such files)"
                    ) from None
                skipped.append((exc.where, exc.reason))
                bar.advance()
                continue
            out[n] = to_array(image, resolution, channels)
            if label is not None:
                labels[n], has_labels = label, True
            n += 1
            bar.advance()
    if n == 0:
        raise GanbenchError(
            f"none of the {len(source)} images could be decoded (first: {skipped[0][0]}:"
            f" {skipped[0][1]}); check the files"
            if skipped
            else "the dataset split is empty"
        )
    return Decoded(n, labels[:n] if has_labels else None, skipped)


def report_skipped(decoded: Decoded, say: Callable[[str], None], where: Path | None) -> None:
    if not decoded.skipped:
        return
    shown = "; ".join(f"{w} ({r})" for w, r in decoded.skipped[:3])
    more = f" and {len(decoded.skipped) - 3} more" if len(decoded.skipped) > 3 else ""
    listed = f" (all listed in {where})" if where else ""
    say(f"skipped {len(decoded.skipped)} unreadable image(s): {shown}{more}{listed}")


def read_manifest(folder: Path) -> dict | None:
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    return manifest if manifest.get("format") == FORMAT else None


def open_prepared(folder: Path, manifest: dict) -> ImageArray:
    images = np.load(folder / "images.npy", mmap_mode="r")[: manifest["count"]]
    labels = np.load(folder / "labels.npy") if manifest["has_labels"] else None
    return ImageArray(
        images=images,
        labels=labels,
        source=f"prepared cache {folder}",
        class_names=tuple(manifest.get("class_names", ())),
    )


def prepare(
    dataset: Dataset,
    request: DatasetRequest,
    root: Path,
    cache: Path,
    *,
    bad_images: BadImagePolicy = "skip",
    progress: bool = True,
    force: bool = False,
    say: Callable[[str], None] = print,
) -> tuple[ImageArray, bool]:
    """The prepared cache for ``request``, built if missing or stale; (images, reused)."""
    source = dataset.open(request, root)
    folder = cache_folder(cache, dataset, request)
    stamp = fingerprint(source.files())
    manifest = read_manifest(folder)
    if manifest and manifest["fingerprint"] == stamp and not force:
        return open_prepared(folder, manifest), True
    n, c, r = len(source), dataset.channels, request.resolution
    with sealed_folder(folder) as tmp:
        images = np.lib.format.open_memmap(tmp / "images.npy", "w+", np.uint8, (n, c, r, r))
        decoded = decode_into(
            source,
            images,
            c,
            bad_images=bad_images,
            progress=progress,
            description=f"preparing {dataset.name} {request.split} @{r}px",
        )
        images.flush()
        del images
        np.save(tmp / "labels.npy", decoded.labels if decoded.labels is not None else [])
        (tmp / "bad_images.txt").write_text("".join(f"{w}\t{why}\n" for w, why in decoded.skipped))
        manifest = {
            "format": FORMAT,
            "dataset": dataset.name,
            "split": request.split,
            "category": category_of(request),
            "resolution": r,
            "channels": c,
            "count": decoded.count,
            "skipped": len(decoded.skipped),
            "has_labels": decoded.labels is not None,
            "class_names": list(source.class_names()),
            "fingerprint": stamp,
            "root": str(root),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "ganbench": ganbench.__version__,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))  # last: the seal
    report_skipped(decoded, say, folder / "bad_images.txt")
    return open_prepared(folder, manifest), False
