"""Decoding one chunk of a split into the preparation's memory maps: the unit of work.

A chunk is a run of contiguous source indices. Image i goes to row i of ``images.npy`` and
its label to entry i of ``labels-by-index.npy`` (the per-index layout): where a chunk
writes never depends on another chunk, so any process may decode any chunk, in any order,
and a chunk decoded twice writes the same bytes. Both maps are flushed before the chunk
is reported, so a chunk the journal records as done is on disk.

The same code runs in worker processes (:func:`start_worker`, :func:`decode_in_worker`)
and in the preparing process itself (one worker).
"""

from __future__ import annotations

import contextlib
import fcntl
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ganbench.data.journal import IMAGES, LABELS_BY_INDEX, ChunkRecord, Plan
from ganbench.data.transform import to_array
from ganbench.errors import BadImageError, GanbenchError
from ganbench.plugins.interfaces import Dataset, DatasetRequest, ImageSource
from ganbench.signals import STOP_SIGNALS


@dataclass(frozen=True)
class ChunkJob:
    """What decoding chunks needs; picklable, for worker processes (which open the
    dataset themselves: a source may hold what cannot cross a process boundary)."""

    dataset: Dataset
    request: DatasetRequest
    root: Path
    folder: Path
    plan: Plan
    #: ``--bad-images stop``: a chunk ends at its first unreadable image, not done.
    stop_at_bad: bool


@dataclass
class ChunkResult:
    record: ChunkRecord
    #: False when ``stop_at_bad`` met an unreadable image (the last of ``record.bad``).
    complete: bool = True


class ChunkDecoder:
    """Decodes chunks of one source into the memory maps of one partial folder."""

    def __init__(self, job: ChunkJob, source: ImageSource | None = None) -> None:
        if source is None:
            source = job.dataset.open(job.request, job.root)
            if len(source) != job.plan.count:
                raise GanbenchError(
                    f"{job.dataset.name} {job.request.split} has {len(source)} images now,"
                    f" not {job.plan.count}: its files changed during the preparation; run it"
                    " again"
                )
        self.job = job
        self.source = source
        _, self.channels, self.resolution, _ = job.plan.shape
        self._images = _Rows(job.folder / IMAGES, np.dtype(np.uint8), job.plan.shape[1:])
        self._labels: _Rows | None = None  # gone once compaction began (see redecode)

    def decode(self, chunk: int) -> ChunkResult:
        """Decode chunk ``chunk`` into its rows, flush them, and say what failed."""
        if self._labels is None:
            self._labels = _Rows(self.job.folder / LABELS_BY_INDEX, np.dtype(np.int64), ())
        start, stop = self.job.plan.bounds(chunk)
        images, labels = self._images.map(start, stop), self._labels.map(start, stop)
        record = ChunkRecord(chunk)
        complete = True
        for i in range(start, stop):
            try:
                image, label = self.source.read(i)
            except BadImageError as exc:
                record.bad.append((i, exc.where, exc.reason))
                if self.job.stop_at_bad:
                    complete = False
                    break
                continue
            images[i - start] = to_array(image, self.resolution, self.channels)
            labels[i - start] = -1 if label is None else label
            record.labeled |= label is not None
        images.flush()
        labels.flush()
        return ChunkResult(record, complete)

    def redecode(self, indices: Iterable[int]) -> None:
        """Decode ``indices`` (images that decoded before) into their rows again, flushed."""
        for i in indices:
            image, _ = self.source.read(i)
            row = self._images.map(i, i + 1)
            row[0] = to_array(image, self.resolution, self.channels)
            row.flush()


class _Rows:
    """Rows ``start..stop`` of a ``.npy`` file, memory-mapped alone: flushing them writes
    back only their pages, not those other workers dirtied in the rest of the file."""

    def __init__(self, path: Path, dtype: np.dtype, row: tuple[int, ...]) -> None:
        self.path, self.dtype, self.row = path, dtype, row
        whole = np.load(path, mmap_mode="r")
        self.offset = whole.offset  # where the data starts, after the .npy header
        del whole
        self.row_bytes = int(np.prod(row, dtype=np.int64)) * dtype.itemsize

    def map(self, start: int, stop: int) -> np.memmap:
        offset = self.offset + start * self.row_bytes
        return np.memmap(self.path, self.dtype, "r+", offset, (stop - start, *self.row))


# --- in a worker process --------------------------------------------------------------

_JOB: ChunkJob | None = None
_DECODER: ChunkDecoder | None = None
_HELD: list[int] = []


def start_worker(job: ChunkJob) -> None:
    """A worker's initializer. Stop signals are the parent's business: it stops the
    workers (SIGKILL) when asked to stop, and a Ctrl-C that reaches the whole process group
    must not kill them mid-chunk with a traceback. A worker whose parent died (even by
    SIGKILL) exits at once."""
    global _JOB
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    # Started with them blocked (see ganbench.data.workers): one that came meanwhile is
    # dropped now, being ignored.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True).start()
    fd = os.open(job.folder / IMAGES, os.O_RDONLY)
    with contextlib.suppress(OSError):  # a filesystem that cannot lock: see partial.py
        fcntl.flock(fd, fcntl.LOCK_SH)  # no later owner starts while this worker lives
    _HELD.append(fd)
    _JOB = job


def _exit_with(sentinel: int) -> None:
    multiprocessing.connection.wait([sentinel])
    os._exit(1)


def decode_in_worker(chunk: int) -> ChunkResult:
    """Decode one chunk in a worker process (the source is opened by the first call, so
    that an error doing so reaches the parent as this call's error)."""
    global _DECODER
    assert _JOB is not None, "start_worker was not called"
    try:
        if _DECODER is None:
            _DECODER = ChunkDecoder(_JOB)
        return _DECODER.decode(chunk)
    except GanbenchError as exc:
        # As a plain GanbenchError: some subclasses cannot be rebuilt from their message
        # when the result is unpickled in the parent.
        error = GanbenchError(str(exc))
        error.exit_code = exc.exit_code
        raise error from None
