"""Files and folders that appear whole or not at all: built under a temporary name,
fsync'ed, then renamed (and the folder holding them fsync'ed).

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
    A folder that was there before (stale, or unsealed) is replaced. Its files and the
    rename are fsync'ed: after a power cut the folder is there whole, or not at all."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    stale = folder.exists()
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        yield tmp
        fsync_tree(tmp)
        if stale:
            shutil.rmtree(folder, ignore_errors=True)
        try:
            os.replace(tmp, folder)
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
        fsync_folder(folder.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def fsync_tree(top: Path) -> None:
    """Flush every file and folder under ``top`` (a sealed folder's content must be on
    disk before the rename that makes it visible)."""
    for root, _, files in os.walk(top):
        for name in files:
            fsync_file(Path(root) / name)
        fsync_folder(Path(root))


def fsync_file(path: Path) -> None:
    """Flush a file's bytes to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_folder(folder: Path) -> None:
    """Flush a folder's entries: a rename is durable only once its folder is."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """The one way ganbench writes a file whole or not at all. Yields a temporary path
    beside ``path`` (named for this process, so two writers never share one); when the
    block ends without error the file is fsync'ed, renamed onto ``path`` (``os.replace``)
    and the folder fsync'ed, so neither ``kill -9`` nor a power loss leaves ``path``
    empty or half-written. On error the temporary file is removed and ``path`` is as it
    was. For writers that want a path (``torch.save``, ``Image.save``, ONNX); the
    temporary name ends in ``.tmp``, so a writer that picks its format from the suffix
    must be told the format."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        commit_file(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def commit_file(tmp: Path, path: Path) -> None:
    """Make the finished file ``tmp`` (beside ``path``, on the same filesystem) take
    ``path``'s place durably: fsync it, ``os.replace`` it, fsync the folder. For files
    written by streaming (a download's ``.part``, resumed over several runs), which
    :func:`atomic_path` cannot wrap."""
    fsync_file(tmp)
    os.replace(tmp, path)
    fsync_folder(Path(path).parent)


def write_atomic(path: Path, data: bytes | str) -> None:
    """``data`` into ``path`` whole or not at all (see :func:`atomic_path`)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_path(path) as tmp:
        tmp.write_bytes(raw)
