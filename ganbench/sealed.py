"""Folders that appear whole or not at all: built under a temporary name, then renamed.

The prepared image cache and the cached real statistics are both trusted only when
complete; building them beside their final place and renaming (``os.replace``, atomic on
one filesystem) means an interrupted build leaves only a temporary folder behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def sealed_folder(folder: Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``folder``; on success it replaces ``folder``
    (the caller writes its seal, e.g. a manifest, last); on error it is removed."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        yield tmp
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
