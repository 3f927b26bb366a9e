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


def _formats(head: bytes) -> list[str] | None:
    """The format the first bytes announce, for the common ones: PIL then tries only
    that reader, not its 40-odd others in turn (a fifth of a small WebP's decode time).
    The reader, hence the pixels and the errors, are the ones PIL would pick anyway."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ["WEBP"]
    if head[:3] == b"\xff\xd8\xff":
        return ["JPEG"]
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return ["PNG"]
    return None


def _decode(fp: object, where: str, formats: list[str] | None = None) -> Image.Image:
    try:
        with Image.open(fp, formats=formats) as img:  # type: ignore[arg-type]
            img.load()  # decode now: a truncated file fails here, not later in a worker
            return img.copy()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        # PIL names an in-memory file by its repr, a memory address: drop it, so that the
        # same bad file gives the same line in every run (and in bad_images.txt).
        reason = (str(exc) or type(exc).__name__).replace(f" {fp!r}", "")
        raise BadImageError(where, reason) from None


def open_image(path: Path) -> Image.Image:
    """The image in ``path``, fully decoded."""
    return _decode(path, str(path))


def decode_bytes(data: bytes, where: str) -> Image.Image:
    """An image from encoded bytes (an LMDB value, an archive member); ``where`` names it."""
    return _decode(io.BytesIO(data), where, _formats(data[:12]))
