"""Decoding one image file or blob into a PIL image, with errors that name the file.

Every dataset plugin decodes through here so that a truncated or corrupt image is always
reported the same way (:class:`BadImageError` with the file or key), whatever the format.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from ganbench.errors import BadImageError

#: Image file endings that folder-based datasets pick up (case-insensitive).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".ppm")


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def _decode(fp: object, where: str) -> Image.Image:
    try:
        with Image.open(fp) as img:  # type: ignore[arg-type]
            img.load()  # decode now: a truncated file fails here, not later in a worker
            return img.copy()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise BadImageError(where, str(exc) or type(exc).__name__) from None


def open_image(path: Path) -> Image.Image:
    """The image in ``path``, fully decoded."""
    return _decode(path, str(path))


def decode_bytes(data: bytes, where: str) -> Image.Image:
    """An image from encoded bytes (an LMDB value, an archive member); ``where`` names it."""
    return _decode(io.BytesIO(data), where)
