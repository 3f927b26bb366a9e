"""The background writer: delivers the journal to MLflow in order, waiting out outages.

Training never waits for it. While the store is away the writer retries with back-off
(at most a few seconds apart, so delivery resumes soon after the store is back) and says
one line when the outage starts and one when it ends; what could not be sent stays in the
journal on disk. Only the store's absence or business (:func:`is_transient`) makes it
wait: everything else a record meets is that record's fault, and the record alone is set
aside in ``rejected.jsonl`` with its journal line and the reason (said once), while
delivery goes on. So a group MLflow refuses is delivered again one record, then one key,
at a time, and only what MLflow refuses is set aside; so is a file that is gone (except a
rotated checkpoint whose newer upload follows), a file that cannot be read, and a damaged
journal line.

The thread itself survives anything: an error outside any one record (the journal or its
folder cannot be read or written) is retried with back-off; only when it persists does
the thread stop, leaving ``writer-failed.json`` in the outbox (``ganbench runs`` and
``ganbench sync`` show it). At a checkpoint it folds the delivered prefix of a long
journal away (:meth:`Journal.compact`), between two deliveries, where no offset moves.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import traceback
from collections.abc import Callable

from ganbench.tracking.outbox import problems
from ganbench.tracking.outbox.baton import Baton, HandedOver
from ganbench.tracking.outbox.delivery import (
    Delivery,
    MissingFile,
    groups,
    pieces,
    rotated_checkpoint,
    upload_name,
)
from ganbench.tracking.outbox.journal import DAMAGED, HEADER, JOURNAL, Journal, Op
from ganbench.tracking.store import is_transient

#: Longest wait between two tries while the store is away.
MAX_BACKOFF = 5.0
#: A store that answers but fails the same records this many times is refusing them.
MAX_STRIKES = 5
#: Errors in a row outside any one record (the journal, the outbox folder) before the
#: thread gives up and leaves writer-failed.json.
MAX_FAULTS = 5
#: The writer thread's niceness (19 = lowest priority): about 1.5% of a core while every
#: core is busy training, all the idle time otherwise.
WRITER_NICENESS = 19

Item = tuple[int, Op]


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
        background: bool = True,
    ) -> None:
        self.journal, self.delivery, self.where, self.say = journal, delivery, where, say
        self.reachable = reachable
        #: Deliver below the process's priority (beside a training); False for a command
        #: whose process does nothing but wait for the delivery (``sync``, ``eval``,
        #: ``probe``...): at niceness 19 on a machine busy with other work, the writer
        #: got a few percent of a core and such a command timed out waiting for it.
        self.background = background
        #: Ops before this offset were journaled by an earlier process: MLflow may have
        #: some of them already (delivered, but the offset was not yet saved).
        self.replay_until = journal.size()
        self.outage_since: float | None = None
        #: Journal records dealt with: delivered, set aside, or skipped (rotated).
        self.delivered_ops = 0
        #: Records set aside in rejected.jsonl, and a line naming each (the first ones).
        self.refusals = problems.Refusals(journal.folder, say)
        #: Why the thread stopped, when it stopped for good (None while it works).
        self.failure: str | None = None
        self.compactions = 0
        #: CPU seconds the thread used (set when it ends; the overhead benchmark reads it).
        self.cpu_seconds = 0.0
        self._strikes = 0
        self._delay = 0.25
        self._offset = self._saved = 0
        self._line = 0  # lines before _offset
        self._started = False
        self._compacting = True
        self._wake = threading.Event()
        self._compact = threading.Event()
        self._closing = threading.Event()
        self._abandon = threading.Event()
        #: Which thread may move the offset: close() hands it to a thread at the process's
        #: priority, which goes on from the same offset (see baton.py).
        self.baton = Baton()
        #: Cuts a back-off wait short (abandon or hand-over).
        self._interrupt = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ganbench-tracking", daemon=True)

    def start(self) -> Writer:
        self._thread.start()
        return self

    def notify(self) -> None:
        self._wake.set()

    def request_compaction(self) -> None:
        """A checkpoint: fold the delivered prefix away once it is long enough."""
        self._compact.set()
        self._wake.set()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def close(self, timeout: float) -> int:
        """Deliver what is left within ``timeout`` seconds; returns how many ops remain.

        A background writer hands what is left to a thread at the process's own priority:
        the training it yielded to is over, and at niceness 19 on a machine busy with other
        work it got a few percent of a core, so a stopped run's last records (its KILLED
        status) outlived the stop's short wait. The new thread does not wait for the old
        one to finish the group it is in, unless that group's order matters (baton.py)."""
        deadline = time.monotonic() + timeout
        self._closing.set()
        if self.background and self.failure is None:
            self._interrupt.set()
            self._wake.set()
            replayed = self._take_baton(deadline)
            if replayed is not None:
                self.replay_until = max(self.replay_until, replayed)
                self.background = False
                self._interrupt.clear()
                self._thread = threading.Thread(
                    target=self._run, name="ganbench-tracking-close", daemon=True
                )
                self._thread.start()
        self._wake.set()
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():
            self._abandon.set()
            self._interrupt.set()
            self._thread.join(5)
        return self.journal.pending()

    def _take_baton(self, deadline: float) -> int | None:
        """Take the baton from the background thread, waiting (until ``deadline``) only
        while it sends a group whose order matters; None if that did not end in time."""
        while True:
            replayed = self.baton.take()
            if replayed is not None or time.monotonic() >= deadline:
                return replayed
            self._thread.join(min(0.05, max(0.0, deadline - time.monotonic())))

    # ---- the thread ---------------------------------------------------------------------
    def _run(self) -> None:
        self.baton.hold()
        # Below the training's priority: on a machine whose every core trains (the CPU),
        # delivery takes the time training leaves, and catches up when it ends; where
        # the training waits on a GPU the writer gets a core at once. (Linux: niceness
        # is per thread.)
        if self.background:
            with contextlib.suppress(AttributeError, OSError):
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WRITER_NICENESS)
        try:
            self._guarded()
        finally:
            self.cpu_seconds += time.thread_time()

    def _guarded(self) -> None:
        """Deliver until closed; an error outside any one record is retried with back-off,
        and after MAX_FAULTS in a row without progress the thread stops, saying why."""
        faults = 0
        while True:
            before = (self._offset, self._started)
            try:
                self._begin()
                self._deliver_all()
                return
            except HandedOver:
                return  # the closing thread goes on; this one changes nothing more
            except Exception as exc:
                faults = 1 if (self._offset, self._started) != before else faults + 1
                with contextlib.suppress(HandedOver):
                    self.baton.sent()  # the failed call is over: none of it in flight
                if self.baton.lost():
                    return  # the closing thread meets the same error and counts it
                if faults >= MAX_FAULTS or self._abandon.is_set():
                    self._stop(exc)
                    return
                self._interrupt.wait(min(0.25 * 2**faults, MAX_BACKOFF))

    def _begin(self) -> None:
        with self.baton.held():
            if self._started:
                return
            self._offset = self._saved = self.journal.delivered()
            self._line = self.journal.lines_before(self._offset)
            earlier = problems.read_failure(self.journal.folder)
            if earlier is not None:
                line = problems.failure_line(self.journal.folder, earlier)
                self.say(f"tracking: {line}; delivering again from there")
                problems.clear_failure(self.journal.folder)
            self._started = True

    def _stop(self, exc: BaseException) -> None:
        self.failure = _reason(exc)
        line = self._line + 1
        try:
            left: int | None = self.journal.pending()
        except Exception:
            left = None
        folder = self.journal.folder
        details = "".join(traceback.format_exception(exc))[-4000:]
        try:
            marker = problems.write_failure(folder, self.failure, line, left, details)
            where = f" (see {marker})"
        except Exception as second:
            where = f" (and writing {problems.WRITER_FAILED} failed: {_reason(second)})"
        self.say(
            f"tracking: the writer stopped at {JOURNAL} line {line} ({self.failure}){where};"
            f" {'the' if left is None else left} records wait in {folder}. Deliver them"
            f" with: ganbench sync"
            f" {folder.parent}"
        )

    def _deliver_all(self) -> None:
        while not self._abandon.is_set():
            self._maybe_compact()
            batch = self.journal.read(self._offset)
            if not batch:
                self._save()  # again, if saving failed before: the offset must persist
                if self._closing.is_set():
                    return
                self._wake.wait(0.25)
                self._wake.clear()
                continue
            try:
                done = all(self._deliver_group(group) for group in groups(batch))
            finally:
                self._save()
            if not done:  # the store is away: wait, then from the first undelivered op
                self._interrupt.wait(self._delay)
                self._delay = min(self._delay * 2, MAX_BACKOFF)

    def _save(self) -> None:
        with self.baton.held():
            if self._offset != self._saved:
                self.journal.mark_delivered(self._offset)
                self._saved = self._offset

    def _done(self, end: int, count: int = 1, *, header: bool = False) -> None:
        """Records up to byte ``end`` are dealt with (delivered, set aside or skipped)."""
        with self.baton.held():
            self.baton.sent()
            self._offset = end
            self._line += count
            if not header:
                self.delivered_ops += count
            self._delay, self._strikes = 0.25, 0
            self._back()

    def _deliver_group(self, group: list[Item]) -> bool:
        """Deliver one group; False when the store is away (nothing more is tried now)."""
        ops = [op for _, op in group]
        kind = ops[0]["op"]
        if kind == HEADER:
            self._done(group[-1][0], header=True)
            return True
        if kind == DAMAGED:
            self._set_aside(ops[0], "damaged journal line")
            self._done(group[-1][0])
            return True
        self.baton.sending(kind, group[-1][0])
        try:
            self.delivery.deliver(ops, replay=self._offset < self.replay_until)
        except Exception as exc:
            if self._worth_retrying(exc):
                self.baton.sent()  # nothing of it in flight: a closing thread may take over
                self._outage(exc)
                return False
            if len(group) == 1:
                return self._by_key(group[0], exc)
            return all(self._deliver_one(item) for item in group)
        self._done(group[-1][0], len(group))
        return True

    def _deliver_one(self, item: Item) -> bool:
        """One op of a group MLflow refused as a whole."""
        try:
            self.delivery.deliver([item[1]], replay=self._offset < self.replay_until)
        except Exception as exc:
            if self._worth_retrying(exc):
                self._outage(exc)
                return False
            return self._by_key(item, exc)
        self._done(item[0])
        return True

    def _by_key(self, item: Item, exc: BaseException) -> bool:
        """An op MLflow refused (``exc``): its keys one at a time, setting aside only the
        ones refused; a missing file is set aside unless it is a rotated checkpoint."""
        end, op = item
        if isinstance(exc, MissingFile) and rotated_checkpoint(op) and self._superseded(item):
            self._done(end)  # step-N.pt, deleted after two newer ones: their uploads follow
            return True
        refused: list[tuple[Op, BaseException]] = []
        parts = pieces(op)
        if len(parts) == 1:
            refused.append((op, exc))
        else:
            for part in parts:
                try:
                    self.delivery.deliver([part], replay=self._offset < self.replay_until)
                except Exception as each:
                    if self._worth_retrying(each):
                        self._outage(each)
                        return False  # the whole op again later (twice is harmless)
                    refused.append((part, each))
        for part, why in refused:
            reason = str(why) if isinstance(why, MissingFile) else _reason(why)
            self._set_aside(part, reason, exc=why)
        self._done(end)
        return True

    def _superseded(self, item: Item) -> bool:
        """A later upload of the same artifact name follows in the journal."""
        end, op = item
        name = upload_name(op)
        later = self.journal.ops_after(end, b'"op":"artifact"')
        return any(o["op"] == "artifact" and upload_name(o) == name for o in later)

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

    def _maybe_compact(self) -> None:
        """Fold the delivered prefix away if a checkpoint asked and it is long enough."""
        if not (self._compacting and self._compact.is_set()):
            return
        with self.baton.held():
            self._compact_now()

    def _compact_now(self) -> None:
        if self._offset - self.journal.header.length < self.journal.compact_bytes:
            return  # the request stands until the prefix is long enough
        old = self._offset
        try:
            new = self.journal.compact(old)
        except Exception as exc:
            self._compacting = False
            self.say(
                f"tracking: could not compact {self.journal.path} ({_reason(exc)}); it keeps"
                " growing, and nothing is lost"
            )
            return
        self._compact.clear()
        self.compactions += 1
        self.replay_until = self.replay_until - old + new if self.replay_until > old else 0
        self._offset, self._line = new, 1
        self._saved = -1
        self._save()

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

    def _set_aside(self, op: Op, reason: str, exc: BaseException | None = None) -> None:
        """Keep ``op`` (at the current journal line) in rejected.jsonl, with ``reason``."""
        with self.baton.held():
            self.refusals.keep(op, reason, self._line + 1, _from_mlflow(exc))

    @property
    def rejected_ops(self) -> int:
        return self.refusals.count

    @property
    def rejections(self) -> list[str]:
        return self.refusals.lines


def _from_mlflow(exc: BaseException | None) -> bool:
    from mlflow.exceptions import MlflowException

    return isinstance(exc, MlflowException)
