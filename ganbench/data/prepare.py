"""Decoding a split once into a compact cache: uint8 N x C x R x R, memory-mapped.

A prepared cache is a folder ``<cache>/prepared/<dataset>/<split>[-<category>]-<R>px``
with ``images.npy``, ``labels.npy``, ``bad_images.txt`` and, written last,
``manifest.json``. It is trusted only when its manifest exists and its fingerprint of the
source files (names, sizes, modification times) still matches.

It is built in ``<folder>.partial/`` (:mod:`ganbench.data.partial`) and renamed into
place when complete, so the cache folder never exists half-written. The split is decoded
in chunks of contiguous images by worker processes (:mod:`ganbench.data.workers`), each
writing image i straight into row i of the memory map; a chunk is journaled once its rows
are flushed, so an interrupted preparation (Ctrl-C, SIGTERM, SIGKILL, a lost node)
continues where it stopped. When every chunk is done, the rows of images that failed to
decode are closed up (:mod:`ganbench.data.compact`): the cache is byte for byte the one
that one process decoding in order writes, whatever the number of workers and however
often it was interrupted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

import ganbench
from ganbench.data.chunks import ChunkDecoder, ChunkJob
from ganbench.data.compact import compact, damaged
from ganbench.data.journal import IMAGES, Compaction, Plan, Resumed
from ganbench.data.partial import PartialFolder
from ganbench.data.transform import to_array
from ganbench.data.workers import ChunkRunner, check_workers, why_not_parallel
from ganbench.errors import BadImageError, GanbenchError, Stopped, UsageError
from ganbench.plugins.interfaces import Dataset, DatasetRequest, ImageArray, ImageSource
from ganbench.progress import ItemProgress
from ganbench.signals import StopNow, StopSignals, signal_name

FORMAT = "ganbench-prepared/1"
BadImagePolicy = Literal["skip", "stop"]
#: Images per chunk at most: the unit of work of a worker and of resuming (about 0.6 s
#: of one core for LSUN's 256 px WebP photos).
CHUNK = 256
#: Chunks per worker at least, where the split is small: the last chunks finish at about
#: the same time, so no core waits long for the slowest at the end.
CHUNKS_PER_WORKER = 16
#: Images per chunk at least (about 40 ms of work): smaller, the per-chunk costs (a
#: message each way, a journal line and its fsync) would show.
MIN_CHUNK = 16
#: Compaction records its progress after moving this many bytes of rows (or a chunk's
#: rows, if more): a stopped compaction decodes at most that much again.
COMPACT_BLOCK_BYTES = 16 << 20


def category_of(request: DatasetRequest) -> str | None:
    category = request.options.get("category")
    return str(category) if category else None


def cache_folder(cache: Path, dataset: Dataset, request: DatasetRequest) -> Path:
    category = category_of(request)
    tag = f"{request.split}-{category.replace(',', '+')}" if category else request.split
    return cache / "prepared" / dataset.name / f"{tag}-{request.resolution}px"


def fingerprint(files: list[Path]) -> str:
    """Changes when any source file is added, removed, resized or rewritten."""
    h = hashlib.sha256()
    for path in sorted(files):
        stat = path.stat()
        h.update(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return h.hexdigest()


@dataclass
class Decoded:
    """What a decoding pass produced."""

    count: int
    labels: np.ndarray | None
    skipped: list[tuple[str, str]] = field(default_factory=list)


def decode_into(
    source: ImageSource,
    out: np.ndarray,
    channels: int,
    *,
    bad_images: BadImagePolicy,
    progress: bool,
    description: str,
) -> Decoded:
    """Decode, crop and resize every image of ``source`` into ``out`` (N x C x R x R)."""
    resolution = out.shape[-1]
    labels = np.full(len(source), -1, dtype=np.int64)
    has_labels = False
    skipped: list[tuple[str, str]] = []
    n = 0
    with ItemProgress(len(source), description, enabled=progress) as bar:
        for i in range(len(source)):
            try:
                image, label = source.read(i)
            except BadImageError as exc:
                if bad_images == "stop":
                    raise BadImageError(
                        exc.where, f"{exc.reason} (pass --bad-images skip to skip such files)"
                    ) from None
                skipped.append((exc.where, exc.reason))
                bar.advance()
                continue
            out[n] = to_array(image, resolution, channels)
            if label is not None:
                labels[n], has_labels = label, True
            n += 1
            bar.advance()
    if n == 0:
        raise GanbenchError(
            f"none of the {len(source)} images could be decoded (first: {skipped[0][0]}:"
            f" {skipped[0][1]}); check the files"
            if skipped
            else "the dataset split is empty"
        )
    return Decoded(n, labels[:n] if has_labels else None, skipped)


def report_skipped(decoded: Decoded, say: Callable[[str], None], where: Path | None) -> None:
    if not decoded.skipped:
        return
    shown = "; ".join(f"{w} ({r})" for w, r in decoded.skipped[:3])
    more = f" and {len(decoded.skipped) - 3} more" if len(decoded.skipped) > 3 else ""
    listed = f" (all listed in {where})" if where else ""
    say(f"skipped {len(decoded.skipped)} unreadable image(s): {shown}{more}{listed}")


def read_manifest(folder: Path) -> dict | None:
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    return manifest if manifest.get("format") == FORMAT else None


def open_prepared(folder: Path, manifest: dict) -> ImageArray:
    images = np.load(folder / "images.npy", mmap_mode="r")[: manifest["count"]]
    labels = np.load(folder / "labels.npy") if manifest["has_labels"] else None
    return ImageArray(
        images=images,
        labels=labels,
        source=f"prepared cache {folder}",
        class_names=tuple(manifest.get("class_names", ())),
    )


def valid_manifest(folder: Path, stamp: str) -> dict | None:
    """The manifest of the cache in ``folder`` if it is sealed and of these files."""
    manifest = read_manifest(folder)
    return manifest if manifest and manifest["fingerprint"] == stamp else None


def prepare(
    dataset: Dataset,
    request: DatasetRequest,
    root: Path,
    cache: Path,
    *,
    bad_images: BadImagePolicy = "skip",
    progress: bool = True,
    force: bool = False,
    workers: int | None = None,
    chunk: int | None = None,
    say: Callable[[str], None] = print,
) -> tuple[ImageArray, bool]:
    """The prepared cache for ``request``, built if missing or stale; (images, reused).

    ``workers`` processes decode (default: one per core this process may use; 1 decodes
    in this process); ``chunk`` images are one unit of work (default: :func:`chunk_size`).
    An interrupted preparation of the same files continues, in the chunks it started
    with; ``force`` rebuilds from scratch.
    """
    workers = check_workers(workers)
    if chunk is not None and chunk < 1:
        raise UsageError(
            f"--chunk {chunk}: a chunk holds at least 1 image; leave it out for"
            f" the default (at most {CHUNK})"
        )
    source = dataset.open(request, root)
    folder = cache_folder(cache, dataset, request)
    stamp = fingerprint(source.files())
    manifest = valid_manifest(folder, stamp)
    if manifest and not force:
        return open_prepared(folder, manifest), True
    if len(source) == 0:
        raise GanbenchError("the dataset split is empty")
    r = request.resolution
    chunk = chunk or chunk_size(len(source), workers)
    plan = Plan(stamp, (len(source), dataset.channels, r, r), chunk)
    builder = _Builder(dataset, request, root, source, folder, plan, bad_images, workers, say)
    return builder.run(force=force, progress=progress)


def chunk_size(count: int, workers: int) -> int:
    """:data:`CHUNK` images, fewer for a split too small to give each worker
    :data:`CHUNKS_PER_WORKER` chunks, and never under :data:`MIN_CHUNK`."""
    return max(MIN_CHUNK, min(CHUNK, -(-count // (workers * CHUNKS_PER_WORKER))))


def read_bad_images(path: Path) -> list[tuple[str, str]]:
    """The (where, why) lines of a ``bad_images.txt``."""
    return [(w, why) for w, _, why in (x.partition("\t") for x in path.read_text().splitlines())]


class _Builder:
    """One preparation into the partial folder, from wherever it stopped to the seal."""

    def __init__(
        self,
        dataset: Dataset,
        request: DatasetRequest,
        root: Path,
        source: ImageSource,
        folder: Path,
        plan: Plan,
        bad_images: BadImagePolicy,
        workers: int,
        say: Callable[[str], None],
    ) -> None:
        self.dataset, self.request, self.root, self.source = dataset, request, root, source
        self.folder, self.plan, self.workers, self.say = folder, plan, workers, say
        self.bad_images = bad_images
        self.partial = PartialFolder(folder)
        self.job = ChunkJob(dataset, request, root, self.partial.path, plan, bad_images == "stop")
        #: Images decoded so far (failed ones included), for the line saying what is kept.
        self.done = 0

    def run(self, *, force: bool, progress: bool) -> tuple[ImageArray, bool]:
        # A stop signal only sets a flag, looked at between chunks (and while waiting for
        # the lock); a second one stops at once (StopNow). Either way the partial folder
        # holds only flushed, recorded chunks, so the same command continues from it.
        with StopSignals() as signals:

            def stop() -> None:
                if signals.received is not None:
                    raise Stopped(signals.received, self._stopped(signals.received))

            try:
                self.partial.lock(say=self.say, stop=stop)
                try:
                    manifest = valid_manifest(self.folder, self.plan.fingerprint)
                    if manifest and not force:  # sealed by the process this one waited for
                        self.partial.discard()
                        return open_prepared(self.folder, manifest), True
                    self._build(force, progress, stop)
                finally:
                    self.partial.unlock()
            except StopNow as exc:
                exc.note = self._kept()
                raise
        manifest = read_manifest(self.folder)
        assert manifest is not None
        listed = self.folder / "bad_images.txt"
        report_skipped(Decoded(manifest["count"], None, read_bad_images(listed)), self.say, listed)
        return open_prepared(self.folder, manifest), False

    def _stopped(self, signum: int) -> str:
        return (
            f"preparing {self.dataset.name} {self.request.split} at {self.request.resolution}px"
            f" stopped by {signal_name(signum)}: {self._kept()}"
        )

    def _kept(self) -> str:
        return (
            f"{self.done:,} of {self.plan.count:,} images decoded and kept in"
            f" {self.partial.path}; run the same command to continue"
        )

    def _build(self, force: bool, progress: bool, stop: Callable[[], None]) -> None:
        if not force and valid_manifest(self.partial.path, self.plan.fingerprint):
            self.partial.seal()  # it stopped between its manifest and the rename
            return
        state = None if force else self.partial.resume(self.plan)
        if state is None:
            if not force and not self.partial.is_empty():
                self.say(
                    f"starting over: {self.partial.path} holds an unfinished preparation of"
                    " other files or settings, or a damaged one"
                )
            self.partial.start_over(self.plan)
            state = Resumed("decoding", self.plan)
        elif state.plan != self.plan:  # continued in the chunks it was started with
            self.plan = state.plan
            self.job = dataclasses.replace(self.job, plan=state.plan)
        self.partial.wait_for_workers(stop)
        if state.phase == "decoding":
            compaction = self._decode(state, progress, stop)
            self._compact(compaction, stop, resumed=False)
        elif state.phase == "compacting":
            assert state.compaction is not None
            self.done = self.plan.count
            self.say(f"continuing: all {self.plan.count:,} images decoded (in {self.partial.path})")
            self._stop_at_bad(read_bad_images(self.partial.path / "bad_images.txt"))
            self._compact(state.compaction, stop, resumed=True)
        self.partial.seal()

    def _stop_at_bad(self, bad: list[tuple[str, str]]) -> None:
        """``--bad-images stop`` on a preparation that skipped images before."""
        if bad and self.bad_images == "stop":
            where, reason = bad[0]
            raise BadImageError(where, f"{reason} (pass --bad-images skip to skip such files)")

    def _decode(self, state: Resumed, progress: bool, stop: Callable[[], None]) -> Compaction:
        plan, records = self.plan, state.records
        if state.dropped:
            self.partial.rewrite_journal(plan, records.values())
        self.done = sum(plan.bounds(c)[1] - plan.bounds(c)[0] for c in records)
        if self.done:
            self.say(
                f"continuing: {self.done:,} of {plan.count:,} images already decoded"
                f" (in {self.partial.path})"
            )
        self._stop_at_bad([(w, r) for c in sorted(records) for _, w, r in records[c].bad])
        todo = [c for c in range(plan.chunks) if c not in records]
        processes = min(self.workers, len(todo))
        if processes > 1 and (why := why_not_parallel(self.job)):
            self.say(f"decoding in this process only: {why}")
            processes = 1
        description = f"preparing {self.dataset.name} {self.request.split} @{plan.shape[-1]}px"
        with (
            ItemProgress(plan.count, description, enabled=progress, start=self.done) as bar,
            ChunkRunner(self.job, todo, processes, stop, self.source) as runner,
        ):
            for result in runner:
                if not result.complete:
                    _, where, reason = result.record.bad[-1]
                    raise BadImageError(
                        where, f"{reason} (pass --bad-images skip to skip such files)"
                    )
                self.partial.record(result.record)
                records[result.record.chunk] = result.record
                start, end = plan.bounds(result.record.chunk)
                self.done += end - start
                bar.advance(end - start)
        row = int(np.prod(plan.shape[1:]))
        block = max(plan.chunk, COMPACT_BLOCK_BYTES // row)  # rows moved between records
        compaction, _ = self.partial.begin_compaction(plan, records, block)
        return compaction

    def _compact(self, compaction: Compaction, stop: Callable[[], None], *, resumed: bool) -> None:
        plan = self.plan
        skipped = self.partial.skipped()
        assert skipped is not None
        if resumed:
            window = damaged(compaction.next, compaction.count, compaction.block, plan.count)
            lost = sorted(set(window) - set(skipped.tolist()))
            if lost:
                ChunkDecoder(self.job, self.source).redecode(lost)

        def checkpoint(next_row: int, count: int) -> None:
            state = dataclasses.replace(compaction, next=next_row, count=count)
            self.partial.checkpoint(plan, state)

        images = np.load(self.partial.path / IMAGES, mmap_mode="r+")
        count = compact(
            images,
            skipped,
            compaction.next,
            compaction.count,
            block=compaction.block,
            checkpoint=checkpoint,
            stop=stop,
        )
        del images
        self.partial.finish(self._manifest(count, len(skipped), compaction.has_labels))

    def _manifest(self, count: int, skipped: int, has_labels: bool) -> dict[str, Any]:
        r = self.request.resolution
        return {
            "format": FORMAT,
            "dataset": self.dataset.name,
            "split": self.request.split,
            "category": category_of(self.request),
            "resolution": r,
            "channels": self.dataset.channels,
            "count": count,
            "skipped": skipped,
            "has_labels": has_labels,
            "class_names": list(self.source.class_names()),
            "fingerprint": self.plan.fingerprint,
            "root": str(self.root),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "ganbench": ganbench.__version__,
        }
