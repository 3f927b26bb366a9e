"""Running chunks in worker processes, or in this process when one worker is asked for.

Engine: ``concurrent.futures.ProcessPoolExecutor`` with the *spawn* start method. A
spawned worker is a fresh interpreter that inherits nothing from this process: no LMDB
environment (which must not cross a fork), no lock, no thread of rich's progress bar or
of torch. It costs about 0.3 s once per worker. A worker that dies (a decoder crash, the
out-of-memory killer) breaks the pool with an error instead of hanging it, as
``multiprocessing.Pool`` would. Workers write into the memory maps themselves and return
only their chunk's record; this process journals, draws the bar and stops them.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import resource_tracker
from types import TracebackType

from ganbench.data.chunks import ChunkDecoder, ChunkJob, ChunkResult, decode_in_worker, start_worker
from ganbench.errors import GanbenchError, UsageError
from ganbench.plugins.interfaces import ImageSource
from ganbench.signals import STOP_SIGNALS


def default_workers() -> int:
    """The cores this process may use (its CPU affinity: what a scheduler granted)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def check_workers(workers: int | None) -> int:
    if workers is None:
        return default_workers()
    if workers < 1:
        raise UsageError(
            f"--workers {workers}: at least 1 process must decode; pass --workers 1 to decode"
            f" in this process, or leave it out for one per core ({default_workers()} here)"
        )
    return workers


@contextlib.contextmanager
def _spawning(needs_main: bool) -> Iterator[None]:
    """While workers may be started: they inherit the stop signals blocked (held pending,
    not lost, in this process) and ignore them from their start
    (:func:`ganbench.data.chunks.start_worker`), not only from the end of their imports:
    a Ctrl-C to the whole process group in between would print a worker's traceback."""
    # multiprocessing starts its resource tracker with these blocked and then *unblocks*
    # them: it must be running before they are blocked here.
    resource_tracker.ensure_running()
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        with _main_not_rerun(needs_main):
            yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


@contextlib.contextmanager
def _main_not_rerun(needed: bool) -> Iterator[None]:
    """While workers are spawned: keep them from running the main script again, as spawn
    does to find what ``__main__`` defines. They need only ganbench's modules and the
    dataset's; a script calling prepare() without ``if __name__ == "__main__"`` would
    start over in each worker, and some mains import torch (2 s a worker). Unless the
    dataset itself is defined in the main script."""
    main = sys.modules.get("__main__")
    if main is None or needed:
        yield
        return
    saved = {
        name: main.__dict__.pop(name) for name in ("__file__", "__spec__") if name in main.__dict__
    }
    main.__spec__ = None
    try:
        yield
    finally:
        del main.__spec__
        main.__dict__.update(saved)


def why_not_parallel(job: ChunkJob) -> str | None:
    """Why this job cannot go to worker processes, or None when it can."""
    if multiprocessing.current_process().daemon:
        return "this process is a daemonic worker, which cannot start processes"
    try:
        pickle.dumps(job)
    except Exception as exc:
        return f"the dataset cannot be sent to another process ({type(exc).__name__}: {exc})"
    return None


class ChunkRunner:
    """Context manager; iterating yields each chunk's result as it finishes (in any order).

    Leaving the context, normally or not, stops every worker: a chunk in flight is lost
    (it was not journaled) and is decoded again by the next run.
    """

    def __init__(
        self,
        job: ChunkJob,
        chunks: Sequence[int],
        processes: int,
        stop: Callable[[], None],
        source: ImageSource,
    ) -> None:
        self.job, self.chunks, self.stop = job, list(chunks), stop
        self.processes = max(1, min(processes, len(self.chunks)))
        self._source = source
        self._pool: ProcessPoolExecutor | None = None
        #: The dataset is defined in the main script: workers must run it to unpickle it.
        self._needs_main = self.processes > 1 and b"__main__" in pickle.dumps(job)

    def __enter__(self) -> ChunkRunner:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._pool is not None:
            _kill(self._pool)
            self._pool = None

    def __iter__(self) -> Iterator[ChunkResult]:
        if self.processes == 1:
            decoder = ChunkDecoder(self.job, self._source)
            for chunk in self.chunks:
                self.stop()
                yield decoder.decode(chunk)
            return
        yield from self._in_workers()

    def _in_workers(self) -> Iterator[ChunkResult]:
        self._pool = ProcessPoolExecutor(
            self.processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=start_worker,
            initargs=(self.job,),
        )
        todo = iter(self.chunks)
        pending: dict[Future[ChunkResult], int] = {}

        def fill() -> None:
            assert self._pool is not None
            # Two chunks per worker in flight: none waits for work, and a stop loses few.
            while len(pending) < 2 * self.processes:
                chunk = next(todo, None)
                if chunk is None:
                    return
                pending[self._pool.submit(decode_in_worker, chunk)] = chunk

        with _spawning(self._needs_main):
            fill()  # starts the workers
        while pending:
            self.stop()
            done, _ = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
            for future in sorted(done, key=pending.__getitem__):
                chunk = pending.pop(future)
                try:
                    result = future.result()
                except BrokenProcessPool:
                    time.sleep(0.2)  # killed along with this process? Then say that
                    self.stop()
                    first, end = self.job.plan.bounds(chunk)
                    raise GanbenchError(
                        f"a worker process died while decoding images {first}-{end - 1}:"
                        " killed, out of memory, or a crash in an image decoder. What is done"
                        " is kept: run the same command to continue (with --workers 1 a"
                        " crashing image stops the process that reads it)"
                    ) from None
                yield result
            with _spawning(self._needs_main):
                fill()
        self._pool.shutdown(wait=True)
        self._pool = None


def _kill(pool: ProcessPoolExecutor) -> None:
    """Stop the workers now, whatever they are doing (their chunks are not journaled)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for process in processes:
        if process.is_alive():
            process.kill()
    for process in processes:
        process.join(10)
    # Only now, with the workers gone, shut down and wait for the pool's manager thread:
    # left running (shutdown(wait=False)), it closes its wake-up pipe while Python's exit
    # hook for process pools still writes to it ("Bad file descriptor" at exit, seen
    # after a Ctrl-C).
    pool.shutdown(wait=True, cancel_futures=True)
