"""The folder a preparation works in, ``<cache folder>.partial/``: what makes it resumable.

Its files, in the order a preparation writes them:

- ``images.npy`` (N x C x R x R uint8) and ``labels-by-index.npy`` (N int64): image i at
  row i, label i at entry i. Created full size (sparse) before anything is decoded.
- ``journal.jsonl``: line 1 names what is prepared (source fingerprint, shape, chunk
  size); each further line is one chunk whose rows were flushed: which of its images
  failed to decode and whether any had a label. Appended and fsynced per chunk. A torn
  line (the process died while writing it) or an unreadable one ends the journal: its
  chunk and those after it are decoded again.
- Once every chunk is done: the final ``labels.npy`` and ``bad_images.txt``, the indices
  of the failed images (``skipped.npy``), then ``compact.json`` (what is prepared and how
  far compaction got, replaced atomically after every block); the journal and
  ``labels-by-index.npy`` are deleted, since ``compact.json`` now holds the state.
- ``manifest.json`` once compaction is done; the work files are deleted and the folder
  is renamed to the cache folder (:meth:`PartialFolder.seal`).

Anything in the folder that does not match (another fingerprint or shape, a missing or
unreadable file) makes the preparation start over: it is never trusted. A rerun with
another chunk size continues in the chunk size the journal was started with.

One process owns the folder at a time: it holds ``flock`` on its file ``lock``, which
the kernel releases when it dies (even by SIGKILL); another process waits for it and
then finds the sealed cache. Worker processes hold a shared ``flock`` on ``images.npy``
for as long as they live, so an owner that continues after a killed one first waits
until the killed one's workers have exited (they exit as soon as their parent dies).
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ganbench.data.journal import (
    COMPACT,
    IMAGES,
    JOURNAL,
    LABELS_BY_INDEX,
    LOCK,
    SKIPPED,
    WORK_FILES,
    ChunkRecord,
    Compaction,
    Plan,
    Resumed,
    partial_folder,
    same_work,
)
from ganbench.errors import GanbenchError
from ganbench.files.sealed import fsync_folder, fsync_tree, write_atomic


def npy_bytes(array: Any) -> bytes:
    """What ``np.save`` writes for ``array``."""
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _has_array(path: Path, dtype: Any, shape: tuple[int, ...]) -> bool:
    try:
        array = np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return False
    ok = array.dtype == dtype and array.shape == shape
    del array
    return ok


class PartialFolder:
    """The in-progress folder of one cache: owning it, reading and writing its state."""

    def __init__(self, folder: Path) -> None:
        #: The cache folder this one becomes.
        self.final = folder
        self.path = partial_folder(folder)
        self._lock: int | None = None
        self._journal: Any = None

    # --- ownership --------------------------------------------------------------------

    def lock(self, *, say: Callable[[str], None], stop: Callable[[], None]) -> None:
        """Own the folder (creating it), waiting while another process owns it. The
        caller then checks whether that process sealed the cache meanwhile."""
        told = False
        while True:
            self.path.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:  # sealed (renamed) just now
                continue
            try:
                while not _try_lock(fd, fcntl.LOCK_EX, self.path / LOCK, say):
                    if not told:
                        say(f"waiting for another process that is preparing {self.final}")
                        told = True
                    stop()
                    time.sleep(0.1)
                ours = _same_file(self.path / LOCK, fd)
            except BaseException:
                os.close(fd)
                raise
            if ours:
                self._lock = fd
                return
            os.close(fd)  # the owner sealed or discarded the folder meanwhile: again

    def unlock(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def wait_for_workers(self, stop: Callable[[], None]) -> None:
        """Until no worker process of an earlier owner still holds ``images.npy``."""
        try:
            fd = os.open(self.path / IMAGES, os.O_RDWR)
        except FileNotFoundError:
            return
        try:
            while not _try_lock(fd, fcntl.LOCK_EX, self.path / IMAGES, lambda _: None):
                stop()
                time.sleep(0.05)
        finally:
            os.close(fd)  # releases the lock too

    def discard(self) -> None:
        """Remove the folder if it holds nothing but its lock (this process's: the cache
        it was made for was sealed by another process)."""
        if self.is_empty():
            with contextlib.suppress(OSError):
                (self.path / LOCK).unlink()
                self.path.rmdir()

    # --- reading ----------------------------------------------------------------------

    def is_empty(self) -> bool:
        return all(child.name == LOCK for child in self.path.iterdir())

    def resume(self, plan: Plan) -> Resumed | None:
        """The state of the folder for ``plan`` before its manifest is written, or None
        when it must start over."""
        images_ok = _has_array(self.path / IMAGES, np.uint8, plan.shape)
        if (self.path / COMPACT).exists():
            state = _read_json(self.path / COMPACT)
            adopted = same_work(state, plan)
            compaction = self._read_compaction(state, adopted) if state and adopted else None
            return Resumed("compacting", adopted, compaction=compaction) if compaction else None
        if not images_ok or not _has_array(self.path / LABELS_BY_INDEX, np.int64, plan.shape[:1]):
            return None
        try:
            data = (self.path / JOURNAL).read_bytes()
        except OSError:
            return None
        lines = data.split(b"\n")
        adopted = same_work(_parse_json(lines[0]), plan)
        if adopted is None:
            return None
        plan = adopted
        records: dict[int, ChunkRecord] = {}
        complete = lines[1:-1]  # the last piece follows the last newline: empty or torn
        dropped = lines[-1] != b""
        for text in complete:
            record = ChunkRecord.parse(text, plan)
            if record is None or record.chunk in records:
                dropped = True
                break
            records[record.chunk] = record
        return Resumed("decoding", plan, records=records, dropped=dropped)

    def _read_compaction(self, state: dict[str, Any], plan: Plan) -> Compaction | None:
        try:
            compaction = Compaction(
                int(state["next"]), int(state["count"]), int(state["block"]),
                bool(state["has_labels"]),
            )  # fmt: skip
        except (KeyError, TypeError, ValueError):
            return None
        if not (0 <= compaction.count <= compaction.next <= plan.count and compaction.block > 0):
            return None
        skipped = self.skipped()
        if skipped is None or not _has_array(self.path / IMAGES, np.uint8, plan.shape):
            return None
        if not ((self.path / "labels.npy").is_file() and (self.path / "bad_images.txt").is_file()):
            return None
        return compaction

    def skipped(self) -> np.ndarray | None:
        """The indices of the images that failed, once compaction began (None if unreadable)."""
        try:
            skipped = np.load(self.path / SKIPPED)
        except (OSError, ValueError):
            return None
        if skipped.dtype != np.int64 or skipped.ndim != 1:
            return None
        if skipped.size > 1 and not (np.diff(skipped) > 0).all():
            return None
        return skipped

    # --- writing ----------------------------------------------------------------------

    def start_over(self, plan: Plan) -> None:
        """Empty the folder and lay out the files for ``plan``; nothing is decoded yet."""
        for child in self.path.iterdir():
            if child.name == LOCK:
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
        images = np.lib.format.open_memmap(self.path / IMAGES, "w+", np.uint8, plan.shape)
        del images
        labels = np.lib.format.open_memmap(
            self.path / LABELS_BY_INDEX, "w+", np.int64, plan.shape[:1]
        )
        del labels
        write_atomic(self.path / JOURNAL, json.dumps(plan.header()).encode() + b"\n")

    def rewrite_journal(self, plan: Plan, records: Iterable[ChunkRecord]) -> None:
        """The journal with only its valid records, so appends follow a whole line."""
        lines = [json.dumps(plan.header()).encode() + b"\n"]
        lines += [r.line() for r in sorted(records, key=lambda r: r.chunk)]
        write_atomic(self.path / JOURNAL, b"".join(lines))

    def record(self, record: ChunkRecord) -> None:
        """Journal a chunk whose rows are flushed: from now on it counts as done."""
        if self._journal is None:
            self._journal = open(self.path / JOURNAL, "ab")  # noqa: SIM115 (kept open)
        self._journal.write(record.line())
        self._journal.flush()
        os.fsync(self._journal.fileno())

    def begin_compaction(
        self, plan: Plan, records: dict[int, ChunkRecord], block: int
    ) -> tuple[Compaction, list[tuple[int, str, str]]]:
        """Every chunk is done: write the final labels and list of failures, then the
        compaction state, which replaces the journal. Returns it and the failures."""
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        bad = [b for c in range(plan.chunks) for b in records[c].bad]
        has_labels = any(r.labeled for r in records.values())
        if len(bad) == plan.count:
            first = bad[0]
            raise GanbenchError(
                f"none of the {plan.count} images could be decoded (first: {first[1]}:"
                f" {first[2]}); check the files"
            )
        skipped = np.array([b[0] for b in bad], dtype=np.int64)
        labels: Any = []
        if has_labels:
            by_index = np.load(self.path / LABELS_BY_INDEX, mmap_mode="r")
            keep = np.ones(plan.count, dtype=bool)
            keep[skipped] = False
            labels = np.asarray(by_index[keep])
            del by_index
        write_atomic(self.path / "labels.npy", npy_bytes(labels))
        text = "".join(f"{where}\t{why}\n" for _, where, why in bad)
        write_atomic(self.path / "bad_images.txt", text.encode())
        write_atomic(self.path / SKIPPED, npy_bytes(skipped))
        start = int(skipped[0]) if len(skipped) else plan.count
        compaction = Compaction(start, start, block, has_labels)
        self.checkpoint(plan, compaction)
        for name in (JOURNAL, LABELS_BY_INDEX):
            (self.path / name).unlink()
        return compaction, bad

    def checkpoint(self, plan: Plan, compaction: Compaction) -> None:
        state = {**plan.header(), **vars(compaction)}
        write_atomic(self.path / COMPACT, json.dumps(state).encode())

    def finish(self, manifest: dict[str, Any]) -> None:
        """Write the manifest (the seal) and drop the work files."""
        write_atomic(self.path / "manifest.json", json.dumps(manifest, indent=1).encode())
        for name in WORK_FILES:
            (self.path / name).unlink(missing_ok=True)

    def seal(self) -> None:
        """Rename the finished folder to the cache folder, replacing a stale one."""
        for name in WORK_FILES:  # a finish() that was interrupted after the manifest
            (self.path / name).unlink(missing_ok=True)
        for tmp in self.path.glob("*.tmp"):  # a write_atomic() that was interrupted
            tmp.unlink()
        if self.final.exists():
            shutil.rmtree(self.final)
        fsync_tree(self.path)  # the content on disk before the rename makes it visible
        os.replace(self.path, self.final)
        fsync_folder(self.final.parent)
        # Still held until unlock(): a process waiting on it then finds the folder gone.
        (self.final / LOCK).unlink(missing_ok=True)


def _try_lock(fd: int, operation: int, path: Path, say: Callable[[str], None]) -> bool:
    """``flock`` without waiting: False if another process holds it. Where the
    filesystem cannot lock (some network filesystems), say so and go on unlocked."""
    try:
        fcntl.flock(fd, operation | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as exc:
        say(
            f"cannot lock {path} ({exc.strerror}): make sure no other process prepares"
            " this cache at the same time"
        )
    return True


def _same_file(path: Path, fd: int) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _parse_json(text: bytes) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        obj = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None
