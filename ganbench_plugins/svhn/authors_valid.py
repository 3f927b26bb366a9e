"""The DCGAN authors' SVHN validation split, index for index, so that the paper's probe
can be run on exactly the images its authors validated and trained it on.

Newmu/dcgan_code svhn/load.py:25-34 (``svhn_with_valid_set``) shuffles the train split
with lib/data_utils.py:30-34 (``shuffle`` = ``sklearn.utils.shuffle(trX, trY,
random_state=np_rng)``), where lib/rng.py:8 makes ``np_rng = RandomState(42)``; in
svhn/svhn_semisup_analysis.py:36 that call is the first draw from ``np_rng``. The first
10,000 shuffled images are the validation set (vaX), the rest the probe's training pool
(trX). ``sklearn.utils.shuffle`` draws its order with ``random_state.shuffle(arange(n))``
whatever the arrays hold, so shuffling the indices gives the authors' order.

Deviation: the authors label digit d as ``y - 1`` (svhn/load.py:14), i.e. 0 for the digit
1 and 9 for the digit 0; ganbench keeps torchvision's labels (the digit itself, 10 -> 0).
Classes are renamed one to one, which no probe accuracy can see; the images, their order
and which image is in which split are the authors'.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ganbench.errors import DatasetNotFoundError
from ganbench.plugins.interfaces import ImageSource

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np
    from PIL import Image

#: The splits cut from train_32x32.mat: the authors' vaX and the trX left after it.
AUTHORS_SPLITS = ("valid", "train-minus-valid")
#: svhn/load.py:31: ``vaX = trX[:10000]``.
AUTHORS_VALID_SIZE = 10_000
#: lib/rng.py:6: ``seed = 42``.
AUTHORS_SEED = 42


def authors_permutation(count: int) -> np.ndarray:
    """The order svhn/load.py:30 puts ``count`` train images in (int64 indices)."""
    import numpy as np
    from sklearn.utils import shuffle

    return shuffle(np.arange(count), random_state=np.random.RandomState(AUTHORS_SEED))


class AuthorsSplitSource(ImageSource):
    """One of :data:`AUTHORS_SPLITS`: the train file's images at the authors' permuted
    indices, in the permuted order. The count comes from the file's header; the
    permutation is drawn on the first read, so ``data info`` stays cheap."""

    def __init__(self, train: ImageSource, split: str, path: Path) -> None:
        if split not in AUTHORS_SPLITS:
            raise ValueError(f"{split!r} is not one of {AUTHORS_SPLITS}")
        total = len(train)
        if total <= AUTHORS_VALID_SIZE:
            raise DatasetNotFoundError(
                f"{path} has only {total} images: the DCGAN authors' svhn {split} split"
                f" (svhn/load.py) takes {AUTHORS_VALID_SIZE:,} of train_32x32.mat for"
                f" validation and needs more than {AUTHORS_VALID_SIZE:,}; use the official"
                " file (73,257 images: `ganbench data download svhn --split train`)"
            )
        self._train = train
        self._total = total
        self._split = split
        self._count = AUTHORS_VALID_SIZE if split == "valid" else total - AUTHORS_VALID_SIZE
        self._indices: np.ndarray | None = None

    def train_indices(self) -> np.ndarray:
        """Index in train_32x32.mat of each image of this split, in the split's order."""
        if self._indices is None:
            order = authors_permutation(self._total)
            valid = self._split == "valid"
            self._indices = order[:AUTHORS_VALID_SIZE] if valid else order[AUTHORS_VALID_SIZE:]
        return self._indices

    def __len__(self) -> int:
        return self._count

    def read(self, index: int) -> tuple[Image.Image, int | None]:
        if not 0 <= index < self._count:
            raise IndexError(f"image {index} of svhn {self._split}, which has {self._count}")
        return self._train.read(int(self.train_indices()[index]))

    def files(self) -> list[Path]:
        return self._train.files()

    def class_names(self) -> tuple[str, ...]:
        return self._train.class_names()
