"""scikit-learn's handwritten digits: ships inside scikit-learn, so it works offline.

1797 8x8 grey images of the digits 0-9 (values 0-16), upsampled to the asked resolution.
The fixed stratified train/test split (80/20, seed 0) lets later probes score a
discriminator on images it never trained on.
"""

from __future__ import annotations

from ganbench.errors import UsageError
from ganbench.hookspecs import hookimpl
from ganbench.interfaces import Dataset, DatasetRequest, ImageArray
from ganbench.registry import Registrar

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

    def load(self, request: DatasetRequest) -> ImageArray:
        import numpy as np
        import torch
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
        from torchvision.transforms.v2 import InterpolationMode
        from torchvision.transforms.v2 import functional as TF

        if request.split not in self.splits:
            raise UsageError(
                f"digits has no split {request.split!r}; use one of {', '.join(self.splits)}"
            )
        if request.resolution not in self.resolutions:
            raise UsageError(
                f"digits is offered at resolutions {self.resolutions}, not {request.resolution}"
            )
        bunch = load_digits()
        images, labels = bunch.images, bunch.target.astype(np.int64)
        if request.split != "all":
            index = np.arange(len(images))
            train, test = train_test_split(
                index, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=labels
            )
            keep = np.sort(train if request.split == "train" else test)
            images, labels = images[keep], labels[keep]
        # 0..16 ink levels -> [0, 1], upsampled with bilinear interpolation (smooth strokes,
        # no overshoot), then stored as uint8 like every other dataset.
        x = torch.from_numpy(images / 16.0).float().unsqueeze(1)
        x = TF.resize(
            x, [request.resolution] * 2, interpolation=InterpolationMode.BILINEAR, antialias=True
        )
        x = (x.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        return ImageArray(
            images=x,
            labels=labels,
            source="sklearn.datasets.load_digits",
            class_names=tuple(str(d) for d in range(10)),
        )


@hookimpl
def ganbench_register_datasets(registry: Registrar[Dataset]) -> None:
    registry.add(DigitsDataset())
