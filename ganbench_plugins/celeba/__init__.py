"""CelebA faces (Liu et al. 2015): the 202,599 aligned and cropped 178x218 photos.

Read from torchvision's layout, ``<root>/celeba/img_align_celeba/*.jpg`` with the
official split file ``<root>/celeba/list_eval_partition.txt`` (``000001.jpg 0`` per line:
0 train, 1 valid, 2 test); ``<root>`` may also be the ``celeba`` folder itself. No labels
are used (the 40 attributes are not classes).

torchvision's ``CelebA`` class is not used: it md5-checks every annotation file on every
load and refuses copies whose files differ in any byte (other line endings, another
mirror), and it parses all attribute files this plugin does not need.
"""

from __future__ import annotations

import os
from pathlib import Path

from ganbench.data.files import FileListSource
from ganbench.errors import DatasetNotFoundError
from ganbench.plugins.hookspecs import hookimpl
from ganbench.plugins.interfaces import Dataset, DatasetRequest, ImageSource
from ganbench.plugins.registry import Registrar

CELEBA_PAGE = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
IMAGES = "img_align_celeba"
PARTITION = "list_eval_partition.txt"
#: Split name -> the number list_eval_partition.txt gives its images ("all": every image).
SPLIT_CODES = {"train": "0", "valid": "1", "test": "2"}

LAYOUT = (
    f"<root>/celeba/{IMAGES}/000001.jpg ... 202599.jpg and <root>/celeba/{PARTITION}"
    " (torchvision's layout)"
)


class CelebADataset(Dataset):
    name = "celeba"
    summary = "CelebA aligned faces (202,599 photos of 10,177 celebrities), unlabelled"
    channels = 3
    num_classes = None
    default_resolution = 64
    resolutions = (32, 64, 128)
    splits = ("train", "valid", "test", "all")
    license = (
        "CelebA agreement: non-commercial research and educational purposes only;"
        " the images belong to their owners and may not be redistributed"
    )
    citation = (
        "Liu, Z., Luo, P., Wang, X. and Tang, X. (2015). Deep Learning Face Attributes in"
        " the Wild. Proceedings of the International Conference on Computer Vision (ICCV)"
    )
    obtain = (
        f"by hand (its Google Drive host refuses scripted downloads): from {CELEBA_PAGE}"
        f" ('Align&Cropped Images' and 'Eval/{PARTITION}'), unzip img_align_celeba.zip"
        f" into <root>/celeba/ and put {PARTITION} beside it, so that"
        f" <root>/celeba/{IMAGES}/000001.jpg and <root>/celeba/{PARTITION} exist"
    )

    def open(self, request: DatasetRequest, root: Path) -> ImageSource:
        self.check_split(request.split)
        root = Path(root)
        base = _base_folder(root)
        images, partition = base / IMAGES, base / PARTITION
        if not images.is_dir():
            raise DatasetNotFoundError(_not_found(root, f"no folder {images}"))
        if not partition.is_file():
            raise DatasetNotFoundError(_not_found(root, f"no split file {partition}"))
        listed = _read_partition(partition)
        if request.split != "all":
            code = SPLIT_CODES[request.split]
            listed = [(name, c) for name, c in listed if c == code]
        names = sorted(name for name, _ in listed)
        if not names:
            raise DatasetNotFoundError(
                f"{partition} lists no {request.split} images (code"
                f" {SPLIT_CODES.get(request.split)}); download {PARTITION} again from"
                f" {CELEBA_PAGE} (Eval folder)"
            )
        present = {e.name for e in os.scandir(images)}
        absent = [n for n in names if n not in present]
        if absent:
            raise DatasetNotFoundError(
                f"{len(absent)} of the {len(names)} celeba {request.split} images listed in"
                f" {partition} are missing from {images} (first: {absent[0]}); the unzip"
                f" was probably cut short. Unzip img_align_celeba.zip again from"
                f" {CELEBA_PAGE} into {base}"
            )
        return FileListSource([images / n for n in names])


def _base_folder(root: Path) -> Path:
    """``<root>/celeba`` (torchvision's layout), or ``root`` when it is that folder."""
    nested = root / "celeba"
    if not nested.is_dir() and ((root / IMAGES).is_dir() or (root / PARTITION).is_file()):
        return root
    return nested


def _not_found(root: Path, what: str) -> str:
    return (
        f"CelebA files not found in {root}: {what}. celeba expects {LAYOUT}, with"
        f" <root> = {root}. Get them by hand from {CELEBA_PAGE} (the Google Drive host"
        f" refuses scripted downloads): unzip img_align_celeba.zip into {root / 'celeba'}"
        f" and put {PARTITION} beside the {IMAGES} folder, or put them under another"
        f" folder and pass it as --data-root FOLDER"
    )


def _read_partition(path: Path) -> list[tuple[str, str]]:
    """(file name, split code) for each line of list_eval_partition.txt."""
    rows = []
    with path.open(encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or parts[1] not in SPLIT_CODES.values():
                raise DatasetNotFoundError(
                    f"{path} line {number} is {line.strip()!r}, not '<image>.jpg <0|1|2>':"
                    f" this is not CelebA's {PARTITION}; download it again from"
                    f" {CELEBA_PAGE} (Eval folder)"
                )
            rows.append((parts[0], parts[1]))
    if not rows:
        raise DatasetNotFoundError(
            f"{path} lists no images; download {PARTITION} again from {CELEBA_PAGE}"
        )
    return rows


@hookimpl
def ganbench_register_datasets(registry: Registrar[Dataset]) -> None:
    registry.add(CelebADataset())
