"""Which images the probe validates on and which labelled images each draw fits on.

The authors' protocol (Newmu/dcgan_code, svhn/load.py ``svhn_with_valid_set`` and
svhn/svhn_semisup_analysis.py lines 104-150): 10,000 images of the training split are held
out for validation by a shuffle, the rest is the pool labels are drawn from; every draw
takes ``labels_per_class`` images of each class at random from the pool. The draws that
choose C (10 per C) and the draws that are scored on the test set (100 for SVHN) are
different draws. Here each draw is seeded by ``(seed, purpose, index)``, so the trained and
the random-init discriminators see the same draws (paired comparisons) and reruns repeat.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ganbench.errors import UsageError
from ganbench.plugins.interfaces import ImageArray

#: The authors' validation size (svhn/load.py: ``vaX = trX[:10000]``).
AUTHORS_VAL_SIZE = 10_000
#: Below this many training images a held-out 10,000 would leave too little to draw from:
#: the default validation is then a fifth of the split.
LARGE_SPLIT = 2 * AUTHORS_VAL_SIZE
#: Draws per C when choosing it (svhn_semisup_analysis.py: ``for _ in range(10)``).
AUTHORS_SELECT_DRAWS = 10

SELECT, TEST, HOLD_OUT = 1, 2, 3


def default_val_size(n_train: int) -> int:
    """The authors' 10,000 where the split has at least 20,000 images, else a fifth."""
    return AUTHORS_VAL_SIZE if n_train >= LARGE_SPLIT else n_train // 5


def labels_of(data: ImageArray, what: str) -> np.ndarray:
    if data.labels is None:
        raise UsageError(f"the probe needs class labels, but the {what} split has none")
    return np.asarray(data.labels, dtype=np.int64)


def hold_out(train: ImageArray, size: int, seed: int) -> tuple[ImageArray, ImageArray]:
    """(pool, validation): ``size`` images of ``train`` held out at random (a seeded
    shuffle, not stratified: the authors' split), the rest the pool labels are drawn from.
    Both keep the training split's order within them."""
    n = len(train.images)
    n_classes = len(np.unique(labels_of(train, "training")))
    if size < 1 or n - size < n_classes:
        raise UsageError(
            f"--val-size {size} does not fit the training split's {n} images (it must hold"
            f" out at least one and leave at least {n_classes}); choose a smaller --val-size"
            " or name the dataset's own validation split with --val-split"
        )
    order = np.random.default_rng([seed, HOLD_OUT]).permutation(n)
    val_idx, pool_idx = np.sort(order[:size]), np.sort(order[size:])

    def take(idx: np.ndarray, what: str) -> ImageArray:
        assert train.labels is not None
        return replace(
            train,
            images=train.images[idx],
            labels=np.asarray(train.labels)[idx],
            notes={**train.notes, "probe_part": what},
        )

    return take(pool_idx, "pool"), take(val_idx, "validation")


def draw_labelled(
    labels: np.ndarray, per_class: int | None, seed: int, purpose: int, index: int
) -> np.ndarray:
    """Indices of one draw's labelled images, sorted (all of them without a count)."""
    if per_class is None:
        return np.arange(len(labels))
    rng = np.random.default_rng([seed, purpose, index])
    chosen = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if len(members) < per_class:
            raise UsageError(
                f"class {c} has {len(members)} images to draw labels from, fewer than the"
                f" {per_class} labels per class asked for; ask for fewer --labels-per-class"
            )
        chosen.append(rng.choice(members, per_class, replace=False))
    return np.sort(np.concatenate(chosen))
