"""The journal: one JSON line per tracking operation, and how far MLflow has it.

Appends are flushed to the operating system at once (a ``kill -9`` of the process loses
none) and fsync'ed at each checkpoint (a power cut loses none the checkpoint depends on).
The delivered offset is kept beside it; what lies after it is what MLflow still lacks.
Only the process that holds the run folder's lock opens a journal.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

Op = dict[str, Any]


class Journal:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "files").mkdir(exist_ok=True)
        self.path = folder / "journal.jsonl"
        self._cursor = folder / "delivered.json"  # written here, read by delivered_offset
        self._repair()
        self._fh = self.path.open("ab")
        self._lock = threading.Lock()
        self._seq = self._count_lines()

    def _repair(self) -> None:
        """Cut a partial last line left by a process killed mid-write."""
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end != len(data):
            with self.path.open("r+b") as fh:
                fh.truncate(end)

    def _count_lines(self) -> int:
        with self.path.open("rb") as fh:
            return sum(1 for _ in fh)

    def append(self, op: Op) -> int:
        """Add ``op`` (JSON-serialisable; NaN allowed); returns its sequence number."""
        line = (json.dumps(op, separators=(",", ":")) + "\n").encode()
        with self._lock:
            self._fh.write(line)
            self._fh.flush()
            self._seq += 1
            return self._seq

    def new_file(self, suffix: str) -> Path:
        """A fresh path under ``files/`` for an op's payload (an image)."""
        with self._lock:
            return self.folder / "files" / f"{self._seq + 1:09d}-{os.getpid()}{suffix}"

    def sync(self) -> None:
        """fsync what was appended (called before each checkpoint)."""
        with self._lock:
            self._fh.flush()
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        with self._lock:
            self._fh.close()

    # ---- reading ------------------------------------------------------------------------
    def read(self, offset: int, limit: int = 256) -> list[tuple[int, Op]]:
        """Up to ``limit`` complete ops from byte ``offset`` on, each with the offset just
        after it (a line still being written is left for the next read)."""
        out: list[tuple[int, Op]] = []
        with self.path.open("rb") as fh:
            fh.seek(offset)
            for line in fh:
                if not line.endswith(b"\n"):
                    break
                offset += len(line)
                out.append((offset, json.loads(line)))
                if len(out) >= limit:
                    break
        return out

    def ops(self) -> Iterator[Op]:
        """Every op ever journaled for the run, in order."""
        return read_ops(self.folder)

    def size(self) -> int:
        return self.path.stat().st_size

    # ---- how far MLflow has it ----------------------------------------------------------
    def delivered(self) -> int:
        return delivered_offset(self.folder)

    def mark_delivered(self, offset: int) -> None:
        tmp = self._cursor.with_name(f".{self._cursor.name}.tmp")
        tmp.write_text(json.dumps({"offset": offset}))
        os.replace(tmp, self._cursor)

    def pending(self) -> int:
        """How many ops MLflow does not have yet."""
        with self._lock:
            self._fh.flush()
        return pending_in(self.folder)


# Readers that need no lock: `ganbench runs` looks into the folders of live runs.


def delivered_offset(folder: Path) -> int:
    """How far into ``folder``'s journal MLflow has it (bytes)."""
    try:
        return int(json.loads((folder / "delivered.json").read_text())["offset"])
    except (OSError, ValueError, KeyError):
        return 0


def read_ops(folder: Path, containing: bytes = b"") -> Iterator[Op]:
    """The complete ops of ``folder``'s journal, in order; only the lines that contain
    ``containing`` are parsed (a long run's journal is tens of MB)."""
    path = folder / "journal.jsonl"
    if not path.exists():
        return
    with path.open("rb") as fh:
        for line in fh:
            if line.endswith(b"\n") and containing in line:
                yield json.loads(line)


def pending_in(folder: Path) -> int:
    """Undelivered ops in ``folder`` (an outbox folder) without opening it for writing."""
    path = folder / "journal.jsonl"
    if not path.exists():
        return 0
    with path.open("rb") as fh:
        fh.seek(delivered_offset(folder))
        return sum(1 for line in fh if line.endswith(b"\n"))
