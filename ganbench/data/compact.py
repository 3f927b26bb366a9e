"""Closing the gaps that skipped images leave: the per-index layout made compact, in place.

Workers write image i to row i, so an image that failed to decode leaves an empty row.
The cache a one-process preparation writes holds the decoded images packed in source
order, then zero rows (as many as were skipped). Compaction turns the first into the
second: block by block in source order, it moves the decoded rows of a block down by the
number of failures before them, then zeroes the tail. A move writes only below the rows
it has yet to read, so no second copy of the images is needed (LSUN bedroom at 256 px is
590 GB); most caches have no failure at all, and then nothing moves.

After every block it flushes the rows and records how far it got. If it is stopped, the
one block in flight may have overwritten source rows that the record does not count as
moved yet: :func:`damaged` names them, and they are decoded again (the same decode gives
the same bytes) before compaction continues from its record.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def damaged(next_row: int, count: int, block: int, total: int) -> range:
    """Source rows that a block moved after the record (``next_row``, ``count``) may have
    overwritten: it wrote rows ``count .. count + block`` and reads from ``next_row`` on."""
    return range(next_row, min(total, count + block))


def compact(
    images: np.ndarray,
    skipped: np.ndarray,
    next_row: int,
    count: int,
    *,
    block: int,
    checkpoint: Callable[[int, int], None],
    stop: Callable[[], None],
) -> int:
    """Move the rows from source row ``next_row`` on (``count`` rows are already in place),
    skipping the rows in ``skipped`` (sorted); zero the tail. Returns the number of images.

    ``checkpoint(next_row, count)`` is called after each block's rows are flushed.
    """
    total = len(images)
    while next_row < total:
        end = min(next_row + block, total)
        lo, hi = np.searchsorted(skipped, [next_row, end])
        rows = np.arange(next_row, end)
        if hi > lo:
            rows = np.setdiff1d(rows, skipped[lo:hi], assume_unique=True)
        if len(rows) and not (count == next_row and len(rows) == end - next_row):
            images[count : count + len(rows)] = images[rows]  # a copy is read first
        next_row, count = end, count + len(rows)
        _flush(images)
        checkpoint(next_row, count)
        stop()
    images[count:] = 0
    _flush(images)
    return count


def _flush(images: np.ndarray) -> None:
    if isinstance(images, np.memmap):
        images.flush()
