"""What a worker tells while its trials end: a line per trial, the progress bar, and the
parent run's ``trials_*`` metrics; and how many trials this worker ran.

Apart from the engine so that the loop that hands out trials does not also format news.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

from ganbench.study.spec import Point


class TrialTally:
    """Counts the trials this worker ran and tells of each one's end."""

    def __init__(
        self,
        name: str,
        objective: str,
        lock: threading.Lock,
        say: Callable[[str], None],
        log_progress: Callable[[], None],
    ) -> None:
        self.name = name
        self.objective = objective
        self.lock = lock
        self.say = say
        self.log_progress = log_progress
        self.ran = 0
        self._advance: Callable[[], Any] | None = None

    def tick(self, point: Point, what: str, attrs: dict[str, Any]) -> None:
        """One trial ended: ``what`` is done, diverged or failed (``attrs`` say more)."""
        with self.lock:
            self.ran += 1
            if what == "done":
                fid = attrs.get("objective")
                objective = f"{self.objective} {attrs.get('fid_name')}"
                note = f"{objective} {fid:.4g}" if fid is not None else "done"
            elif what == "diverged":
                note = f"diverged at step {attrs.get('diverged_step')}"
            else:
                note = f"failed: {attrs.get('error', '')}"
            self.say(f"{point.label()}: {note}")
            if self._advance is not None and what != "failed":
                self._advance()
            self.log_progress()

    @contextlib.contextmanager
    def progress_bar(self, total: int, done: int, *, show: bool) -> Iterator[None]:
        """The study's bar (``done`` of ``total`` trials) while the worker runs."""
        if not show:
            yield
            return
        from ganbench.progress import ItemProgress

        with ItemProgress(total, f"study {self.name}", unit="trials", start=done) as bar:
            self._advance = bar.advance
            try:
                yield
            finally:
                self._advance = None
