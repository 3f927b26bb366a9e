"""Checkpoints and generator files: written atomically, sealed with a checksum, loaded
with clear errors.

A crash or Ctrl-C while saving must never leave a half-written file where a good one was,
so every file is written next to its target, flushed to disk, moved into place with
``os.replace``, and the folder itself is flushed so that the rename survives a power cut.

A file can still be damaged after it was written (a bad disk, a partial copy, flipped
bits): ``torch.load`` ignores the zip's CRCs and loads such a file without a word, and a
resume from it diverged ten steps later. So every file this module writes is *sealed*:
the sha256 of all its bytes is stored in the zip archive's own comment field (the end
record's comment, which every zip reader, ``torch.load`` included, skips), and
:func:`load_file` checks it before unpickling. Files written before seals existed have no
comment and load as they did.
"""

from __future__ import annotations

import errno
import hashlib
import io
import pickle
import shutil
import struct
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ganbench.errors import CheckpointError
from ganbench.files.sealed import atomic_path

CHECKPOINT_FORMAT = "ganbench-checkpoint/1"
GENERATOR_FORMAT = "ganbench-generator/1"

#: The zip comment of a sealed file: this prefix, then the sha256 (hex) of every byte
#: before the comment.
SEAL_PREFIX = b"ganbench-sha256:"
_SEAL_SIZE = len(SEAL_PREFIX) + 64
#: The zip end-of-central-directory record: signature, 16 bytes, comment length (uint16).
_EOCD = b"PK\x05\x06"
_EOCD_SIZE = 22
#: Room kept beyond a file's tensors when checking free space (pickled dicts, zip records).
_OVERHEAD = 256 * 1024


class DiskFull(CheckpointError):
    """A file could not be written for lack of space (the previous one is intact)."""


def save_atomic(obj: Any, path: Path) -> Path:
    """``torch.save`` onto ``path`` whole or not at all (:func:`ganbench.files.sealed.atomic_path`),
    sealed with its sha256. Refuses up front, and turns an ENOSPC into, one
    :class:`DiskFull` line naming the folder and the space needed."""
    path = Path(path)
    needed = estimated_size(obj)
    path.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(path.parent).free
    if free < needed:
        raise DiskFull(_no_space(path, needed, free))
    try:
        with atomic_path(path) as tmp:
            torch.save(obj, tmp)
            _seal(tmp)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        raise DiskFull(_no_space(path, needed, shutil.disk_usage(path.parent).free)) from None
    return path


def estimated_size(obj: Any) -> int:
    """Bytes ``torch.save(obj)`` takes, about: its tensors' bytes plus room for the rest
    (cheap: no serialisation)."""
    total = _OVERHEAD
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, torch.Tensor):
            total += item.untyped_storage().nbytes() if item.device.type != "meta" else 0
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return total


def _no_space(path: Path, needed: int, free: int) -> str:
    return (
        f"no space left in {path.parent} to write {path.name}: it needs about"
        f" {_mb(needed)}, {_mb(free)} are free. Free some space there (the previous files"
        " are intact)"
    )


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def _seal(path: Path) -> None:
    """Store the sha256 of ``path`` (a zip ``torch.save`` just wrote, with no comment) in
    the zip's comment. Hand-written: neither torch nor zipfile can add a comment to an
    archive without rewriting it."""
    with path.open("r+b") as fh:
        fh.seek(-_EOCD_SIZE, io.SEEK_END)
        end = fh.read(_EOCD_SIZE)
        if end[:4] != _EOCD or end[-2:] != b"\0\0":
            raise CheckpointError(f"{path}: torch.save wrote no zip end record; cannot seal it")
        fh.seek(-2, io.SEEK_END)
        fh.write(struct.pack("<H", _SEAL_SIZE))
        fh.seek(0)
        digest = hashlib.sha256()
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
        fh.write(SEAL_PREFIX + digest.hexdigest().encode())


def check_seal(data: bytes, path: Path) -> bool:
    """Check the seal of a file's bytes: True if sealed and intact, False if it has no seal
    (written before seals existed); a damaged or truncated sealed file raises."""
    end = data.rfind(_EOCD, max(0, len(data) - _EOCD_SIZE - 0xFFFF))
    if end < 0 or len(data) < end + _EOCD_SIZE:
        raise CheckpointError(
            f"{path} is truncated or not a ganbench file (no zip end record); use an intact"
            " copy or the previous checkpoint"
        )
    (comment_size,) = struct.unpack("<H", data[end + 20 : end + 22])
    comment = data[end + _EOCD_SIZE :]
    if len(comment) != comment_size:
        raise _damaged(path, f"its end record announces {comment_size} more bytes than it has")
    if comment_size != _SEAL_SIZE or not comment.startswith(SEAL_PREFIX):
        return False  # an unsealed file: torch.load checks what it can
    stored = comment[len(SEAL_PREFIX) :].decode("ascii", "replace")
    actual = hashlib.sha256(memoryview(data)[: end + _EOCD_SIZE]).hexdigest()
    if stored != actual:
        raise _damaged(path, f"its sha256 is {actual[:12]}..., it was written as {stored[:12]}...")
    return True


def _damaged(path: Path, why: str) -> CheckpointError:
    return CheckpointError(
        f"{path} is damaged ({why}); use an intact copy or the previous checkpoint"
    )


def load_file(path: Path, expected_format: str) -> dict[str, Any]:
    """Load a file this module wrote, its seal checked first; damaged, truncated, foreign
    or missing files raise clearly."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist; check the path or the run's artifacts")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{path} cannot be read ({exc.strerror or exc})") from None
    check_seal(data, path)
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError) as exc:
        raise CheckpointError(
            f"{path} is truncated or not a ganbench file ({str(exc).splitlines()[0]});"
            " use an intact copy or the previous checkpoint"
        ) from None
    if not isinstance(obj, Mapping) or obj.get("format") != expected_format:
        found = obj.get("format") if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointError(f"{path} is not a {expected_format} file (it holds {found!r})")
    return dict(obj)
