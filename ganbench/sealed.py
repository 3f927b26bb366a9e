"""Files and folders that appear whole or not at all: built under a temporary name, then
renamed.

The prepared image cache and the cached real statistics are both trusted only when
complete; building them beside their final place and renaming (``os.replace``, atomic on
one filesystem) means an interrupted build leaves only a temporary folder behind.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def sealed_folder(folder: Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``folder``; on success it replaces ``folder``
    (the caller writes its seal, e.g. a manifest, last); on error it is removed.

    Several processes may build the same folder at once (runs started together on a fresh
    cache): the same inputs give the same content, so a folder that another process sealed
    while this one was building is kept (it may already be in use) and this one dropped.
    A folder that was there before (stale, or unsealed) is replaced."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    stale = folder.exists()
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        yield tmp
        if stale:
            shutil.rmtree(folder, ignore_errors=True)
        try:
            os.replace(tmp, folder)
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_atomic(path: Path, data: bytes | str, *, durable: bool = False) -> None:
    """``data`` into ``path`` whole or not at all: a temporary file beside it (named for
    this process, so two writers never share one), renamed onto it. ``durable`` fsyncs
    the file first, for state that a ``kill -9`` or a power loss must not leave empty."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        with open(tmp, "wb") as fh:
            fh.write(raw)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
