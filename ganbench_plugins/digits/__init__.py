"""scikit-learn's handwritten digits: ships inside scikit-learn, so it works offline.

1797 8x8 grey images of the digits 0-9 (values 0-16), upsampled to the asked resolution.
The fixed stratified train/test split (80/20, seed 0) lets later probes score a
discriminator on images it never trained on.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from ganbench.plugins.hookspecs import hookimpl
from ganbench.plugins.interfaces import (
    Dataset,
    DatasetRequest,
    FeatureExtractor,
    ImageSource,
    LoadedExtractor,
)
from ganbench.plugins.registry import Registrar
from ganbench_plugins.digits.env import WEIGHTS_ENV

if TYPE_CHECKING:
    import numpy as np
    import torch
    from PIL import Image

TEST_FRACTION = 0.2
SPLIT_SEED = 0


class DigitsDataset(Dataset):
    name = "digits"
    summary = "scikit-learn's 8x8 handwritten digits (1797 images, 10 classes), upsampled"
    channels = 1
    num_classes = 10
    default_resolution = 32
    resolutions = (8, 16, 32, 64, 128)
    splits = ("train", "test", "all")
    license = "CC BY 4.0 (UCI ML repository, Optical Recognition of Handwritten Digits)"
    citation = (
        "Alpaydin, E. and Kaynak, C. (1998). Optical Recognition of Handwritten Digits."
        " UCI Machine Learning Repository. https://doi.org/10.24432/C50P49"
    )
    obtain = "ships with scikit-learn (sklearn.datasets.load_digits); nothing to download"
    cacheable = False  # 1797 tiny images: decoding them takes well under a second
    bundled = True
    default_extractor = "digits-cnn"  # offline FID/IS: the classifier shipped with this plugin

    def open(self, request: DatasetRequest, root: Path) -> ImageSource:
        import numpy as np
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        self.check_split(request.split)
        bunch = load_digits()
        images, labels = bunch.images, bunch.target.astype(np.int64)
        if request.split != "all":
            index = np.arange(len(images))
            train, test = train_test_split(
                index, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=labels
            )
            keep = np.sort(train if request.split == "train" else test)
            images, labels = images[keep], labels[keep]
        # 0..16 ink levels -> 0..255 grey; the core upsamples (bilinear) like any dataset.
        return _DigitsSource(np.round(images / 16 * 255).astype(np.uint8), labels)


class _DigitsSource(ImageSource):
    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def read(self, index: int) -> tuple[Image.Image, int | None]:
        from PIL import Image

        return Image.fromarray(self.images[index], mode="L"), int(self.labels[index])

    def files(self) -> list[Path]:
        import sklearn.datasets

        return [Path(sklearn.datasets.__file__).parent / "data" / "digits.csv.gz"]

    def class_names(self) -> tuple[str, ...]:
        return tuple(str(d) for d in range(10))


class DigitsCnnExtractor(FeatureExtractor):
    """A small CNN trained on the digits train split, bundled so FID/IS on digits run offline.

    The network lives in :mod:`ganbench_plugins.digits.classifier`, imported only by
    :meth:`load`, so listing plugins never imports torch.
    """

    name = "digits-cnn"
    summary = (
        "small CNN trained on scikit-learn's digits (train split); 64-d pool features,"
        " 10-class logits; weights bundled"
    )
    resizer = "grey (mean of R, G, B), [-1, 1], bilinear (antialias) to 32x32"
    weights_env = WEIGHTS_ENV
    # The bundled weights' (classifier.FEATURE_DIM, NUM_CLASSES; checked by the tests)
    feature_dims: ClassVar[dict[str, int]] = {"pool": 64, "logits": 10}
    # Its logits are the digits dataset's classes (logit i: digit i), so a conditional
    # generator's class accuracy on digits is scored through it.
    classifies = "digits"

    def load(self, weights: str | None, device: torch.device) -> LoadedExtractor:
        from ganbench_plugins.digits.classifier import load_extractor

        return load_extractor(weights, device)


@hookimpl
def ganbench_register_datasets(registry: Registrar[Dataset]) -> None:
    registry.add(DigitsDataset())


@hookimpl
def ganbench_register_extractors(registry: Registrar[FeatureExtractor]) -> None:
    registry.add(DigitsCnnExtractor())
