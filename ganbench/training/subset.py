"""A fixed fraction of a training split (``--set data_fraction=0.1``), for small-data runs.

Data-efficient GAN training is measured on a fraction of a split (Zhao et al. 2020,
"Differentiable Augmentation for Data-Efficient GAN Training", arXiv 2006.10738: 10% and
20% of CIFAR-10). The subset must be the same for every seed of a study, so that seeds
differ only in training noise, and the same at a resume: it is drawn with a fixed seed
(:data:`SUBSET_SEED`, not the run's), stratified by label where the split has labels
(each class keeps its share to within one image), and its size and the sha256 of its
indices are logged so that a resume on other images is refused.
"""

from __future__ import annotations

import hashlib

import numpy as np

from ganbench.errors import ConfigError
from ganbench.plugins.interfaces import ImageArray

#: The subset's seed: fixed, so that every run (any seed) with one fraction of one split
#: trains on the same images.
SUBSET_SEED = 0
#: The params a run with ``data_fraction`` < 1 logs (and a resume checks the digest).
SIZE_KEY = "data.fraction_size"
DIGEST_KEY = "data.fraction_sha256"


def class_quotas(counts: np.ndarray, total: int) -> np.ndarray:
    """How many images of each class make ``total``: each class's exact share
    ``total * n_c / N`` rounded down, and the images left over given one each to the
    classes with the largest remainders (ties: the lower class), so every class is
    within one image of its share and the quotas add up to ``total``."""
    counts = np.asarray(counts, dtype=np.int64)
    exact = counts * total / counts.sum()
    quotas = np.floor(exact).astype(np.int64)
    left = total - int(quotas.sum())
    order = np.argsort(-(exact - quotas), kind="stable")
    quotas[order[:left]] += 1
    return quotas


def subset_indices(count: int, fraction: float, labels: np.ndarray | None) -> np.ndarray:
    """Sorted indices of ``round(fraction * count)`` (at least 1) images of ``count``,
    stratified by ``labels`` when given; drawn from :data:`SUBSET_SEED`."""
    total = max(1, round(fraction * count))
    rng = np.random.default_rng(SUBSET_SEED)
    if labels is None:
        return np.sort(rng.choice(count, size=total, replace=False))
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    picked = [
        rng.choice(np.flatnonzero(labels == label), size=quota, replace=False)
        for label, quota in zip(classes, class_quotas(counts, total), strict=True)
    ]
    return np.sort(np.concatenate(picked)).astype(np.int64)


def indices_digest(indices: np.ndarray) -> str:
    """sha256 of the indices as little-endian int64: the subset's identity."""
    return hashlib.sha256(np.asarray(indices, dtype="<i8").tobytes()).hexdigest()


def fraction_of(data: ImageArray, fraction: float, batch_size: int) -> ImageArray:
    """``data`` cut to ``fraction`` of its images (see the module's docstring)."""
    from ganbench.data.dedup import KeptImages

    keep = subset_indices(len(data), fraction, data.labels)
    if len(keep) < batch_size:
        raise ConfigError(
            f"data_fraction={fraction} leaves {len(keep)} of {len(data)} images, fewer than"
            f" batch_size={batch_size}; raise data_fraction or lower batch_size"
        )
    return ImageArray(
        images=KeptImages(data.images, keep),  # type: ignore[arg-type]
        labels=data.labels[keep] if data.labels is not None else None,
        source=f"{data.source}, {len(keep)} of its {len(data)} images (data_fraction={fraction})",
        class_names=data.class_names,
        notes={**data.notes, SIZE_KEY: str(len(keep)), DIGEST_KEY: indices_digest(keep)},
    )
