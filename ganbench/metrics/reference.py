"""Real-data statistics, computed once per reference and cached.

A reference is (dataset, split, category, resolution, feature extractor and its weights,
number of images) plus a fingerprint of the dataset's files. Its statistics live in
``CACHE/stats/<dataset>/<key>/``: ``stats.npz`` (mean, covariance and the covariance's
square root, float64), ``features.npy`` (for KID and precision/recall), ``labels.npy``
(the images' classes, for intra-FID; absent for an unlabelled dataset) and, written last,
``manifest.json`` holding the reference. A folder whose manifest does not match the
reference asked for exactly (other files, other weights) is rebuilt, never reused; the
folder is built under a temporary name and renamed into place.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import ganbench
from ganbench.data.loading import load_images
from ganbench.data.paths import dataset_root
from ganbench.data.prepare import BadImagePolicy, category_of, fingerprint
from ganbench.files.sealed import sealed_folder
from ganbench.metrics.features import image_features
from ganbench.metrics.frechet import gaussian_stats, psd_sqrt
from ganbench.plugins.interfaces import (
    Dataset,
    DatasetRequest,
    FeatureExtractor,
    LoadedExtractor,
    RealStats,
)

#: /2 added the labels; a /1 folder (no labels) is never read: the format is part of the
#: folder's key, so /1 and /2 caches live side by side.
FORMAT = "ganbench-stats/2"
#: Seed of the random subset of real images when fewer than the whole split are used.
SUBSET_SEED = 0


@dataclass(frozen=True)
class Reference:
    """Which real images, seen through which extractor: the identity of cached stats."""

    dataset: str
    split: str
    category: str | None
    resolution: int
    extractor: str
    weights_sha256: str
    count: int
    data_fingerprint: str

    def folder_name(self) -> str:
        # Without the data fingerprint: statistics of changed files replace the stale ones
        # in the same folder (the manifest, which has it, tells them apart).
        key = dataclasses.asdict(self)
        del key["data_fingerprint"]
        key["format"] = FORMAT
        digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()
        where = f"{self.split}-{self.category}" if self.category else self.split
        return f"{where}-{self.resolution}px-{self.extractor}-{self.count}-{digest[:12]}"

    def describe(self) -> str:
        category = f" {self.category}" if self.category else ""
        return f"{self.dataset}{category} {self.split} at {self.resolution}px"


def data_fingerprint(dataset: Dataset, root: Path) -> str:
    """Changes when the dataset's files change, without reading any image: names, sizes
    and modification times under ``root`` (bundled data: the plugin's version)."""
    if dataset.bundled or not root.exists():
        return f"bundled {type(dataset).__module__} with ganbench {ganbench.__version__}"
    return fingerprint([Path(d, name) for d, _, names in os.walk(root) for name in names])


def subset(n_total: int, count: int) -> np.ndarray:
    """Sorted indices of ``count`` images, seeded (the whole split when it is no bigger):
    prepared arrays are often ordered by class, so the first N would be biased."""
    if count >= n_total:
        return np.arange(n_total)
    rng = np.random.default_rng(SUBSET_SEED)
    return np.sort(rng.choice(n_total, size=count, replace=False))


def _load_cached(folder: Path, reference: Reference) -> RealStats | None:
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("format") != FORMAT or manifest.get("reference") != dataclasses.asdict(
        reference
    ):
        return None
    try:
        with np.load(folder / "stats.npz") as stats:
            mu, sigma, root = stats["mu"], stats["sigma"], stats["sigma_sqrt"]
        features = np.load(folder / "features.npy", mmap_mode="r")
        labels = np.load(folder / "labels.npy") if manifest.get("labelled") else None
    except (OSError, ValueError, KeyError):
        return None  # damaged after sealing: rebuild rather than trust it
    if labels is not None and labels.shape != (len(features),):
        return None
    return RealStats(mu=mu, sigma=sigma, features=features, sigma_sqrt=root, labels=labels)


def _store(folder: Path, reference: Reference, stats: RealStats) -> None:
    with sealed_folder(folder) as tmp:
        np.savez(tmp / "stats.npz", mu=stats.mu, sigma=stats.sigma, sigma_sqrt=stats.sigma_sqrt)
        np.save(tmp / "features.npy", stats.features)
        if stats.labels is not None:
            np.save(tmp / "labels.npy", stats.labels)
        manifest = {
            "format": FORMAT,
            "reference": dataclasses.asdict(reference),
            "labelled": stats.labels is not None,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))  # last: the seal


def stats_from_features(features: np.ndarray, labels: np.ndarray | None = None) -> RealStats:
    """The statistics of real ``features`` (and their images' ``labels``, int64)."""
    mu, sigma = gaussian_stats(features)
    if labels is not None:
        labels = np.asarray(labels, dtype=np.int64)
        if labels.shape != (len(features),):
            raise ValueError(f"{labels.shape} labels for {len(features)} feature rows")
    root = psd_sqrt(sigma)
    return RealStats(mu=mu, sigma=sigma, features=features, sigma_sqrt=root, labels=labels)


def reference_stats(
    dataset: Dataset,
    request: DatasetRequest,
    cache: Path,
    extractor: FeatureExtractor,
    loaded: LoadedExtractor,
    count: int | None,
    device: torch.device,
    *,
    bad_images: BadImagePolicy = "skip",
    progress: bool = True,
    say: Callable[[str], None] = print,
) -> tuple[RealStats, Reference]:
    """The real statistics for ``request`` through ``extractor``: cached, else computed.

    ``count`` real images (None: the whole split; more than the split: the whole split).
    """
    root = dataset_root(dataset.name, request.root, cache)
    stamp = data_fingerprint(dataset, root)
    base = Reference(
        dataset.name,
        request.split,
        category_of(request),
        request.resolution,
        extractor.name,
        loaded.weights_sha256,
        count or 0,
        stamp,
    )
    # Keyed by the count asked for (0 = the whole split): the split's size is known only
    # after loading it, which a cache hit must not do.
    folder = cache / "stats" / dataset.name / base.folder_name()
    cached = _load_cached(folder, base)
    if cached is not None:
        say(f"using cached {extractor.name} statistics of {base.describe()} from {folder}")
        return cached, base
    data = load_images(dataset, request, cache, bad_images=bad_images, progress=progress, say=say)
    index = subset(len(data), count or len(data))
    features = image_features(
        loaded,
        data.images[index] if len(index) < len(data) else data.images,
        device,
        progress=progress,
        description=f"{extractor.name} features of {dataset.name} {request.split}",
    )["pool"]
    labels = None if data.labels is None else np.asarray(data.labels)[index]
    stats = stats_from_features(features, labels)
    _store(folder, base, stats)
    say(
        f"computed {extractor.name} statistics of {len(index)} images of"
        f" {base.describe()}; cached in {folder}"
    )
    return stats, base
