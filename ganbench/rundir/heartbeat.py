"""A live run's heartbeat, from a daemon thread on a timer.

Beating at step boundaries alone left a run silent for as long as one step's work took: a
long FID score during training, or a resume preparing its data, made a healthy run look
"dead?" in ``ganbench runs`` (and a resume elsewhere could take it for gone). A thread
beats whatever the main thread is doing: ``heartbeat.json`` every few seconds, and the
``ganbench.heartbeat`` tag through the run's tracker less often. The step it reports is
the last completed one, which the training loop sets.
"""

from __future__ import annotations

import contextlib
import datetime
import threading
import time
from typing import Protocol

from ganbench.rundir.folder import RunFolder, host

#: How often the run folder's heartbeat file is rewritten, and the MLflow tag sent.
HEARTBEAT_SECONDS = 5.0
HEARTBEAT_TAG_SECONDS = 60.0
TAG = "ganbench.heartbeat"


class TagSink(Protocol):
    def set_tags(self, tags: dict[str, str]) -> None: ...


def tag_value(step: int) -> str:
    """``ISO-TIME step N on HOST`` (``ganbench runs`` and a resume read its time)."""
    when = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return f"{when} step {step} on {host()}"


class Heartbeat:
    """Beats for ``folder`` from a daemon thread until :meth:`stop` (or the ``with``
    block's end). ``step`` is the last completed step; ``tracker``, once set, gets the
    tag. Intervals are read at start (tests shorten them)."""

    def __init__(self, folder: RunFolder, step: int = 0, tracker: TagSink | None = None) -> None:
        self.folder, self.step, self.tracker = folder, step, tracker
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._every = HEARTBEAT_SECONDS
        self._tag_every = HEARTBEAT_TAG_SECONDS
        self._tag_lock = threading.Lock()

    def start(self) -> Heartbeat:
        self._every, self._tag_every = HEARTBEAT_SECONDS, HEARTBEAT_TAG_SECONDS
        self._thread = threading.Thread(target=self._run, name="ganbench-heartbeat", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop beating (at once: the thread waits on an event), wait for the thread, and
        beat a last time: the run's end says its last step."""
        self._stop.set()
        if self._thread is None:
            return
        self._thread.join()
        self._thread = None
        with contextlib.suppress(Exception):
            self.beat()
            self.send_tag()

    def __enter__(self) -> Heartbeat:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def beat(self) -> None:
        """Rewrite heartbeat.json now (also from the main thread, e.g. after a checkpoint)."""
        self.folder.beat(self.step)

    def send_tag(self) -> None:
        tracker = self.tracker
        if tracker is not None:
            with self._tag_lock:
                tracker.set_tags({TAG: tag_value(self.step)})

    def _run(self) -> None:
        next_tag = time.monotonic()
        while True:
            # A beat that fails (a full disk, a folder gone) must not end the run: the
            # next one tries again.
            with contextlib.suppress(Exception):
                self.beat()
                if self.tracker is not None and time.monotonic() >= next_tag:
                    self.send_tag()
                    next_tag = time.monotonic() + self._tag_every
            if self._stop.wait(self._every):
                return
