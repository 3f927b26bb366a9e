"""Any folder of images, e.g. your own faces: ``--dataset imagefolder --data-root FOLDER``.

Two layouts are accepted:

* images directly in FOLDER (``FOLDER/a.jpg``, ``FOLDER/b.png``): unlabelled;
* one sub-folder per class (``FOLDER/cats/a.jpg``, ``FOLDER/dogs/x/b.png``, searched
  recursively): labelled by the index of the class folder among the sorted class
  folders, torchvision's ``ImageFolder`` convention.

Files are picked by their ending (jpg, png, webp, ...); other files and hidden files and
folders (``.DS_Store``, ``.ipynb_checkpoints``) are ignored. Nothing is decoded while
listing, so one corrupt image does not stop ``open``; reading it raises BadImageError.
"""

from __future__ import annotations

import os
from pathlib import Path

from ganbench.data.files import FileListSource
from ganbench.errors import DatasetNotFoundError, UsageError
from ganbench.plugins.hookspecs import hookimpl
from ganbench.plugins.interfaces import Dataset, DatasetRequest, ImageSource
from ganbench.plugins.registry import Registrar

LAYOUTS = (
    "either images directly in the folder (FOLDER/a.jpg, FOLDER/b.png: unlabelled) or one"
    " sub-folder of images per class (FOLDER/<class>/a.jpg: labelled by class folder),"
    " not both"
)


def _is_image(name: str) -> bool:
    from ganbench.data.decode import is_image_file

    return not name.startswith(".") and is_image_file(Path(name))


def _walk_images(folder: str) -> list[str]:
    """Image files under ``folder``, recursively, sorted; symlinked folders followed once."""
    found: list[str] = []
    seen: set[str] = set()
    for here, dirs, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(here)
        if real in seen:  # a symlink loop, or a folder linked twice
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(os.path.join(here, n) for n in sorted(names) if _is_image(n))
    return found


class ImageFolderDataset(Dataset):
    name = "imagefolder"
    summary = "your own folder of images (flat, or one sub-folder per class): --data-root"
    channels = 3
    # Labelled only in the class-folder layout, with as many classes as folders, which a
    # constant cannot say; the source's class_names() does.
    num_classes = None
    default_resolution = 64
    resolutions = (32, 64, 128, 256)
    splits = ("train",)
    license = "whatever applies to your own images"
    citation = "your own images: cite where they come from"
    obtain = (
        "your own images: pass --data-root FOLDER, with " + LAYOUTS + "; files are picked"
        " by ending (.jpg, .jpeg, .png, .webp, .bmp, .gif, .tif, .tiff, .ppm)"
    )

    def open(self, request: DatasetRequest, root: Path) -> ImageSource:
        if request.split not in self.splits:
            raise UsageError(
                f"imagefolder has no split {request.split!r}; use one of"
                f" {', '.join(self.splits)} (it reads every image in the folder)"
            )
        if request.root is None:
            raise UsageError(
                "imagefolder needs --data-root FOLDER: the folder of your images, with " + LAYOUTS
            )
        root = Path(root)
        if not root.is_dir():
            what = "is a file, not a folder" if root.exists() else "does not exist"
            raise DatasetNotFoundError(
                f"image folder {root} {what}: pass --data-root FOLDER with {LAYOUTS}"
            )
        direct: list[str] = []
        classes: list[tuple[str, list[str]]] = []
        for entry in sorted(os.scandir(root), key=lambda e: e.name):
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                images = _walk_images(entry.path)
                if images:  # folders without images (thumbnails of nothing, empty) are no class
                    classes.append((entry.name, images))
            elif _is_image(entry.name):
                direct.append(entry.path)
        if direct and classes:
            raise DatasetNotFoundError(
                f"image folder {root} mixes layouts: {len(direct)} image(s) directly in it"
                f" (e.g. {Path(direct[0]).name}) and sub-folders with images"
                f" ({', '.join(name for name, _ in classes[:5])}). imagefolder accepts"
                f" {LAYOUTS}: move the loose images into a class folder, or the folders out"
            )
        if classes:
            paths = [p for _, images in classes for p in images]
            labels: list[int] | None = [i for i, (_, im) in enumerate(classes) for _ in im]
            return FileListSource(paths, labels, tuple(name for name, _ in classes))
        if direct:
            return FileListSource(direct, None, ())
        raise DatasetNotFoundError(
            f"no images in {root} (files are picked by ending: .jpg, .jpeg, .png, .webp,"
            f" .bmp, .gif, .tif, .tiff, .ppm). Pass --data-root FOLDER with {LAYOUTS}"
        )


@hookimpl
def ganbench_register_datasets(registry: Registrar[Dataset]) -> None:
    registry.add(ImageFolderDataset())
