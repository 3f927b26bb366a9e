"""The background writer: delivers the journal to MLflow in order, waiting out outages.

Training never waits for it. While the store is away the writer retries with back-off
(at most a few seconds apart, so delivery resumes soon after the store is back) and says
one line when the outage starts and one when it ends; what could not be sent stays in the
journal on disk. A refusal no retry can fix (MLflow rejecting a value) is set aside in
``rejected.jsonl`` with the reason, said once, and delivery goes on.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable

from ganbench.mlflow_store import is_transient
from ganbench.outbox.delivery import Delivery, groups
from ganbench.outbox.journal import Journal, Op

#: Longest wait between two tries while the store is away.
MAX_BACKOFF = 5.0
#: A store that answers but fails the same records this many times is refusing them.
MAX_STRIKES = 5
#: The writer thread's niceness (19 = lowest priority): about 1.5% of a core while every
#: core is busy training, all the idle time otherwise.
WRITER_NICENESS = 19


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:160]}" if text else type(exc).__name__


class Writer:
    """One thread per run; :meth:`close` waits for it (bounded) and says what is left."""

    def __init__(
        self,
        journal: Journal,
        delivery: Delivery,
        *,
        where: str,
        say: Callable[[str], None],
        reachable: Callable[[], bool] = lambda: True,
    ) -> None:
        self.journal, self.delivery, self.where, self.say = journal, delivery, where, say
        self.reachable = reachable
        #: Ops before this offset were journaled by an earlier process: MLflow may have
        #: some of them already (delivered, but the offset was not yet saved).
        self.replay_until = journal.size()
        self.outage_since: float | None = None
        self.delivered_ops = 0
        self.rejected_ops = 0
        #: CPU seconds the thread used (set when it ends; the overhead benchmark reads it).
        self.cpu_seconds = 0.0
        self._strikes = 0
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._abandon = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ganbench-tracking", daemon=True)

    def start(self) -> Writer:
        self._thread.start()
        return self

    def notify(self) -> None:
        self._wake.set()

    def close(self, timeout: float) -> int:
        """Deliver what is left within ``timeout`` seconds; returns how many ops remain."""
        self._closing.set()
        self._wake.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._abandon.set()
            self._thread.join(5)
        return self.journal.pending()

    # ---- the thread ---------------------------------------------------------------------
    def _run(self) -> None:
        # Below the training's priority: on a machine whose every core trains (the CPU),
        # delivery takes the time training leaves, and catches up when it ends; where
        # the training waits on a GPU the writer gets a core at once. (Linux: niceness
        # is per thread.)
        with contextlib.suppress(AttributeError, OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WRITER_NICENESS)
        try:
            self._deliver_all()
        finally:
            self.cpu_seconds = time.thread_time()

    def _deliver_all(self) -> None:
        offset = self.journal.delivered()
        delay = 0.25
        while not self._abandon.is_set():
            batch = self.journal.read(offset)
            if not batch:
                if self._closing.is_set():
                    return
                self._wake.wait(0.25)
                self._wake.clear()
                continue
            start = offset
            for group in groups(batch):
                ops = [op for _, op in group]
                try:
                    self.delivery.deliver(ops, replay=start < self.replay_until)
                except Exception as exc:
                    if self._worth_retrying(exc):
                        self._outage(exc)
                        self._abandon.wait(delay)
                        delay = min(delay * 2, MAX_BACKOFF)
                        break
                    self._reject(ops, exc)
                offset = start = group[-1][0]
                self.journal.mark_delivered(offset)
                self.delivered_ops += len(ops)
                delay, self._strikes = 0.25, 0
                self._back()

    def _worth_retrying(self, exc: BaseException) -> bool:
        """Away or busy: retry. MLflow reports both an unreachable server and a server
        error as INTERNAL_ERROR; a store that answers its health check but keeps failing
        the same records is refusing them."""
        if not is_transient(exc):
            return False
        if getattr(exc, "error_code", None) != "INTERNAL_ERROR" or not self.reachable():
            return True
        self._strikes += 1
        return self._strikes < MAX_STRIKES

    def _outage(self, exc: BaseException) -> None:
        if self.outage_since is None:
            self.outage_since = time.monotonic()
            self.say(
                f"tracking: {self.where} is not answering ({_reason(exc)}); training goes on,"
                f" and the records wait in {self.journal.folder}"
            )

    def _back(self) -> None:
        if self.outage_since is not None:
            away = time.monotonic() - self.outage_since
            self.outage_since = None
            self.say(
                f"tracking: {self.where} answers again after {away:.0f} s; delivering the"
                f" {self.journal.pending()} waiting records"
            )

    def _reject(self, ops: list[Op], exc: BaseException) -> None:
        path = self.journal.folder / "rejected.jsonl"
        with path.open("a", encoding="utf-8") as fh:
            for op in ops:
                fh.write(json.dumps({"reason": _reason(exc), "op": op}) + "\n")
        if self.rejected_ops == 0:
            self.say(f"tracking: MLflow refused a record ({_reason(exc)}); kept in {path}")
        self.rejected_ops += len(ops)
