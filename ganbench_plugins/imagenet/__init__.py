"""ImageNet (ILSVRC 2012): 1.28 million training photos of 1000 classes, 50,000 for val.

Read from the official layout: ``<root>/train/<wnid>/*.JPEG`` as the training archive
extracts, and ``<root>/val/<wnid>/*.JPEG`` with the validation images sorted into wnid
folders (as torchvision's ``ImageNet`` class and the usual ``valprep.sh`` script leave
them). A label is the index of the image's wnid among the split's sorted wnid folders,
torchvision's ``ImageFolder`` convention, so both splits of a complete copy agree.
"""

from __future__ import annotations

import os
from pathlib import Path

from ganbench.data.files import FileListSource
from ganbench.errors import DatasetNotFoundError
from ganbench.plugins.hookspecs import hookimpl
from ganbench.plugins.interfaces import Dataset, DatasetRequest, ImageSource
from ganbench.plugins.registry import Registrar

IMAGENET_PAGE = "https://image-net.org/download-images.php"
VALPREP = "https://raw.githubusercontent.com/soumith/imagenetloader.torch/master/valprep.sh"


class ImageNetDataset(Dataset):
    name = "imagenet"
    summary = "ImageNet ILSVRC 2012 (1.28M train / 50k val photos, 1000 classes)"
    channels = 3
    num_classes = 1000
    default_resolution = 64
    resolutions = (32, 64, 128)
    splits = ("train", "val")
    license = (
        "ImageNet terms of access: non-commercial research and educational use only;"
        " the images belong to their owners"
    )
    citation = (
        "Russakovsky, O., Deng, J., Su, H., Krause, J., Satheesh, S., Ma, S., Huang, Z.,"
        " Karpathy, A., Khosla, A., Bernstein, M., Berg, A. C. and Fei-Fei, L. (2015)."
        " ImageNet Large Scale Visual Recognition Challenge. International Journal of"
        " Computer Vision 115(3), 211-252"
    )
    obtain = (
        f"by hand, after registering at {IMAGENET_PAGE} (ILSVRC2012):"
        " extract ILSVRC2012_img_train.tar into <root>/train/ and each class tar inside it"
        " into <root>/train/<wnid>/ (e.g. <root>/train/n01440764/*.JPEG); extract"
        " ILSVRC2012_img_val.tar into <root>/val/ and sort it into <root>/val/<wnid>/"
        f" folders ({VALPREP}, or torchvision.datasets.ImageNet with the devkit)"
    )

    def open(self, request: DatasetRequest, root: Path) -> ImageSource:
        self.check_split(request.split)
        from torchvision.datasets.folder import find_classes, make_dataset

        from ganbench.data.decode import is_image_file

        root = Path(root)
        folder = root / request.split
        if not folder.is_dir():
            raise DatasetNotFoundError(_not_found(root, request.split, f"no folder {folder}"))
        try:
            found, _ = find_classes(folder)
        except FileNotFoundError:
            found = []
        classes = [c for c in found if not c.startswith(".")]
        if not classes:
            flat = any(is_image_file(Path(e.name)) for e in os.scandir(folder))
            why = (
                f"{folder} holds images but no <wnid> folders: sort them into one folder per"
                f" class first ({VALPREP})"
                if flat
                else f"no <wnid> class folders in {folder}"
            )
            raise DatasetNotFoundError(_not_found(root, request.split, why))

        def valid(path: str) -> bool:
            return is_image_file(Path(path)) and not os.path.basename(path).startswith(".")

        samples = make_dataset(
            folder,
            {c: i for i, c in enumerate(classes)},
            is_valid_file=valid,
            allow_empty=True,  # a missing class keeps its index; an empty split fails below
        )
        if not samples:
            raise DatasetNotFoundError(
                _not_found(root, request.split, f"no images in the class folders of {folder}")
            )
        return FileListSource([p for p, _ in samples], [y for _, y in samples], classes)


def _not_found(root: Path, split: str, what: str) -> str:
    return (
        f"ImageNet {split} files not found in {root}: {what}. imagenet expects"
        f" <root>/{split}/<wnid>/*.JPEG (e.g. <root>/{split}/n01440764/), with"
        f" <root> = {root}. Get ILSVRC2012 by hand after registering at {IMAGENET_PAGE}:"
        f" extract ILSVRC2012_img_train.tar into {root / 'train'} (one <wnid>.tar per"
        f" class, each extracted into its own <wnid> folder) and ILSVRC2012_img_val.tar"
        f" into {root / 'val'} sorted into <wnid> folders ({VALPREP}), or put them under"
        f" another folder and pass it as --data-root FOLDER"
    )


@hookimpl
def ganbench_register_datasets(registry: Registrar[Dataset]) -> None:
    registry.add(ImageNetDataset())
