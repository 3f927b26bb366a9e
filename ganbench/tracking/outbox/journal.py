"""The journal: one JSON line per tracking operation, and how far MLflow has it.

Appends are flushed to the operating system at once (a ``kill -9`` of the process loses
none) and fsync'ed at each checkpoint (a power cut loses none the checkpoint depends on).
The delivered offset is kept beside it; what lies after it is what MLflow still lacks.
Only the process that holds the run folder's lock opens a journal.

A line that is not a record (torn by a crash of the disk rather than of the process, or
damaged later) is read as a :data:`DAMAGED` op that names why, so that the writer can set
it aside with its line number and go on with the records after it.

A long run's journal is compacted at checkpoints (:meth:`Journal.compact`): the prefix
MLflow has is folded into ``summary.json`` (:mod:`ganbench.tracking.outbox.summary`) and the file
rewritten as a header line plus the undelivered rest. The header holds the journal's
epoch, which ``delivered.json`` repeats: an offset saved for another epoch (a crash
between the rewrite and the new offset) means "the start of this file's records".
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, NamedTuple

from ganbench.files.sealed import atomic_path, write_atomic
from ganbench.tracking.outbox import summary as summaries

Op = dict[str, Any]
#: The op kind of a line that is not a journal record.
DAMAGED = "damaged"
#: The op kind of a compacted journal's first line.
HEADER = "header"
#: At a checkpoint, a delivered prefix this long (bytes) is folded away: about 4,000 log
#: intervals of a training run.
COMPACT_BYTES = 1 << 20

#: Where the records that are delivered merged keep their items (a mapping).
_ITEMS = {"metrics": "values", "params": "params", "tags": "tags"}

JOURNAL = "journal.jsonl"
DELIVERED = "delivered.json"
_HEADER_START = b'{"op":"header"'


def parse(line: bytes) -> Op:
    """One journal line as an op; a line that is not a record becomes a DAMAGED op with the
    reason and the start of its bytes."""
    try:
        # Zeroed blocks (a power cut on some filesystems) glue NULs before a record.
        op = json.loads(line.strip(b"\0 \r\n"))
    except ValueError as exc:  # UnicodeDecodeError too
        reason = f"not JSON: {exc}"
    else:
        if isinstance(op, dict) and isinstance(op.get("op"), str):
            items = _ITEMS.get(op["op"])
            if items is None or isinstance(op.get(items), dict):
                return op
            reason = f"a {op['op']} record without its {items}"
        else:
            reason = "JSON, but not a journal record"
    raw = line[:200].decode("utf-8", "replace").rstrip("\n")
    return {"op": DAMAGED, "error": reason, "raw": raw}


class Header(NamedTuple):
    """A journal's first line after a compaction (epoch 0, length 0: never compacted):
    how many lines and bytes earlier compactions folded away, in all."""

    epoch: int
    folded_lines: int
    length: int
    folded_bytes: int = 0


def read_header(fh: IO[bytes]) -> Header:
    """The header of the journal open as ``fh`` (read from its start; the position is left
    at the end of the header)."""
    fh.seek(0)
    first = fh.readline()
    if first.startswith(_HEADER_START) and first.endswith(b"\n"):
        try:
            data = json.loads(first)
            folded = int(data.get("folded_bytes", 0))
            return Header(int(data["epoch"]), int(data["folded_lines"]), len(first), folded)
        except (ValueError, KeyError, TypeError):
            pass
    fh.seek(0)
    return Header(0, 0, 0)


class Journal:
    def __init__(self, folder: Path, compact_bytes: int = COMPACT_BYTES) -> None:
        self.folder = folder
        self.compact_bytes = compact_bytes
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "files").mkdir(exist_ok=True)
        self.path = folder / JOURNAL
        self._cursor = folder / DELIVERED  # written here, read by delivered_offset
        self._repair()
        self._fh = self.path.open("ab")
        self._lock = threading.Lock()
        with self.path.open("rb") as fh:
            self.header = read_header(fh)
        # Keeps growing across compactions: payload files are named after it.
        self._seq = self.header.folded_lines + self._count_lines()

    def _repair(self) -> None:
        """Cut a partial last line left by a process killed mid-write."""
        if not self.path.exists():
            return
        with self.path.open("rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            tail = 1 << 16
            while True:  # the last newline, reading back from the end
                start = max(0, size - tail)
                fh.seek(start)
                chunk = fh.read(size - start)
                cut = chunk.rfind(b"\n")
                if cut >= 0 or start == 0:
                    end = start + cut + 1
                    break
                tail *= 2
        if end != size:
            with self.path.open("r+b") as fh:
                fh.truncate(end)

    def _count_lines(self) -> int:
        return self.lines_before(self.size())

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
        after it (a line still being written is left for the next read; a damaged line is
        a DAMAGED op)."""
        out: list[tuple[int, Op]] = []
        with self.path.open("rb") as fh:
            fh.seek(offset)
            for line in fh:
                if not line.endswith(b"\n"):
                    break
                offset += len(line)
                out.append((offset, parse(line)))
                if len(out) >= limit:
                    break
        return out

    def ops_after(self, offset: int, containing: bytes = b"") -> Iterator[Op]:
        """The records after byte ``offset`` whose line contains ``containing``."""
        with self.path.open("rb") as fh:
            fh.seek(offset)
            for line in fh:
                if line.endswith(b"\n") and containing in line:
                    op = parse(line)
                    if op["op"] != DAMAGED:
                        yield op

    def lines_before(self, offset: int) -> int:
        """How many lines the journal has before byte ``offset``."""
        count = 0
        with self.path.open("rb") as fh:
            left = offset
            while left > 0:
                chunk = fh.read(min(left, 1 << 20))
                if not chunk:
                    break
                count += chunk.count(b"\n")
                left -= len(chunk)
        return count

    def ops(self) -> Iterator[Op]:
        """Every op journaled for the run, in order (a compacted prefix as its summary)."""
        return read_ops(self.folder)

    def size(self) -> int:
        return self.path.stat().st_size

    # ---- how far MLflow has it ----------------------------------------------------------
    def delivered(self) -> int:
        return delivered_offset(self.folder)

    def mark_delivered(self, offset: int) -> None:
        data = {"offset": offset, "epoch": self.header.epoch}
        write_atomic(self._cursor, json.dumps(data) + "\n")

    def pending(self) -> int:
        """How many ops MLflow does not have yet."""
        with self._lock:
            self._fh.flush()
        return pending_in(self.folder)

    # ---- compaction ---------------------------------------------------------------------
    def compact(self, offset: int) -> int:
        """Fold the records before byte ``offset`` (all delivered) into the summary and
        rewrite the journal as a new header plus the rest; returns where the rest starts
        now (the caller saves it as the delivered offset). Only the thread that delivers
        calls it (it alone moves the offset); appends wait for the lock only while the
        last appended lines are copied and the file renamed. Crash-safe at every point:
        see the module's docstring."""
        with self.path.open("rb") as src:
            start = read_header(src).length
            folded = [parse(line) for line in _lines(src, start, offset)]
            summaries.save(self.folder, summaries.fold(summaries.load(self.folder), folded))
            epoch = self.header.epoch + 1
            folded_lines = self.header.folded_lines + self.lines_before(offset)
            folded_bytes = self.header.folded_bytes + offset - start
            first = {"op": HEADER, "epoch": epoch, "folded_lines": folded_lines}
            first["folded_bytes"] = folded_bytes
            head = (json.dumps(first, separators=(",", ":")) + "\n").encode()
            src.seek(offset)
            held = False
            reopened: IO[bytes] | None = None
            try:
                with atomic_path(self.path) as tmp:
                    with tmp.open("wb") as out:
                        out.write(head)
                        shutil.copyfileobj(src, out)  # the rest, as journaled so far
                        self._lock.acquire()
                        held = True
                        self._fh.flush()
                        shutil.copyfileobj(src, out)  # lines appended meanwhile
                    # Opened before the rename: once renamed, appends go to the new file.
                    reopened = tmp.open("ab")
                self._fh, old = reopened, self._fh
                reopened = None
                old.close()
                self.header = Header(epoch, folded_lines, len(head), folded_bytes)
            finally:
                if reopened is not None:
                    reopened.close()
                if held:
                    self._lock.release()
        return len(head)


def _lines(fh: IO[bytes], start: int, end: int) -> Iterator[bytes]:
    """The complete lines of ``fh`` between bytes ``start`` and ``end``."""
    fh.seek(start)
    position = start
    for line in fh:
        position += len(line)
        if position > end or not line.endswith(b"\n"):
            return
        yield line


# Readers that need no lock: `ganbench runs` looks into the folders of live runs.


def _saved_offset(folder: Path) -> tuple[int, int]:
    """(offset, epoch) from ``delivered.json`` ((0, 0) when there is none)."""
    try:
        data = json.loads((folder / DELIVERED).read_text())
        return int(data["offset"]), int(data.get("epoch", 0))
    except (OSError, ValueError, KeyError, TypeError):
        return 0, 0


def _delivered_in(folder: Path, fh: IO[bytes]) -> int:
    header = read_header(fh)
    offset, epoch = _saved_offset(folder)
    return max(offset, header.length) if epoch == header.epoch else header.length


def _open_consistent(folder: Path) -> tuple[IO[bytes], int] | None:
    """The journal, opened, with the delivered offset that belongs to it: a compaction
    that replaced the file between the two reads is seen (an offset of a newer epoch)
    and the file opened again."""
    path = folder / JOURNAL
    for _ in range(5):
        try:
            fh = path.open("rb")
        except FileNotFoundError:
            return None
        header = read_header(fh)
        if _saved_offset(folder)[1] <= header.epoch:
            return fh, _delivered_in(folder, fh)
        fh.close()
        time.sleep(0.01)
    fh = path.open("rb")
    return fh, _delivered_in(folder, fh)


def delivered_offset(folder: Path) -> int:
    """How far into ``folder``'s journal MLflow has it (bytes)."""
    opened = _open_consistent(folder)
    if opened is None:
        return 0
    fh, offset = opened
    fh.close()
    return offset


def read_ops(folder: Path, containing: bytes = b"") -> Iterator[Op]:
    """The ops of ``folder``'s journal, in order: the summary of a compacted prefix first,
    then the complete records; only the lines that contain ``containing`` are parsed (a
    long run's journal can be MBs), and damaged lines are left out."""
    path = folder / JOURNAL
    try:
        fh = path.open("rb")  # before the summary: a compaction writes the summary first
    except FileNotFoundError:
        return
    with fh:
        for op in summaries.as_ops(summaries.load(folder)):
            if containing in json.dumps(op, separators=(",", ":")).encode():
                yield op
        for line in fh:
            if line.endswith(b"\n") and containing in line:
                op = parse(line)
                if op["op"] not in (DAMAGED, HEADER):
                    yield op


def pending_in(folder: Path) -> int:
    """Undelivered ops in ``folder`` (an outbox folder) without opening it for writing."""
    opened = _open_consistent(folder)
    if opened is None:
        return 0
    fh, offset = opened
    with fh:
        fh.seek(offset)
        return sum(1 for line in fh if line.endswith(b"\n"))
