"""Which of a writer's threads may move the journal's offset: the hand-over at close.

A training's writer delivers at niceness 19 and a thread at that priority cannot raise it
again (Linux needs CAP_SYS_NICE for that), so at close a new thread at the process's own
priority takes over. It must not wait for the niced thread to finish the group it is in:
on a machine whose every core is busy that took longer than a stopped run's wait, and the
run stayed RUNNING. So the closing thread takes the baton at once and delivers again,
marked as a replay, the group the niced thread was in; the niced thread's own call may
still land, later, and is harmless for the kinds in :data:`ORDER_FREE` (a metric
delivered twice is one value in MLflow, which drops identical metric rows even when two
inserts race). Params are not: two threads inserting the same param at once make the SQL
store raise a unique-key error, which the writer would take for a refusal (seen in a
clean-clone suite: the run's own lr set aside), so a params group in flight is waited
for, as is a group whose late landing could undo a newer record (a tag, a status, an
artifact, an image whose file the other thread removes). Nothing in threading or MLflow
does this: it is the writer's own bookkeeping.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

#: Record kinds the closing thread may deliver again while the niced thread's call on
#: them is still in flight.
ORDER_FREE = frozenset({"metrics", "header"})


class HandedOver(Exception):
    """Raised in a thread that has lost the baton: it must change nothing more."""


class Baton:
    """A lock, the generation that holds it, and the group that generation is sending."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._generation = 0
        self._mine = threading.local()
        #: (kind, end offset) of the group the holder is delivering now, or None.
        self._sending: tuple[str, int] | None = None
        #: Set by :meth:`take`: the holder starts no new group.
        self._wanted = False

    def hold(self) -> None:
        """The calling thread holds the baton from now on (a writer thread's first act)."""
        self._mine.generation = self._generation

    def lost(self) -> bool:
        """The calling thread held the baton and another thread has taken it."""
        return getattr(self._mine, "generation", None) != self._generation

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Change the writer's state under the lock, only while the caller holds the baton."""
        with self._lock:
            if self.lost():
                raise HandedOver
            yield

    def sending(self, kind: str, end: int) -> None:
        """The holder starts a group; after a :meth:`take` began, it may not."""
        with self.held():
            if self._wanted:
                raise HandedOver
            self._sending = (kind, end)

    def sent(self) -> None:
        with self.held():
            self._sending = None

    def take(self) -> int | None:
        """For the closing thread: take the baton from a thread that is still alive.

        Returns the offset up to which ops may already be in MLflow (the end of the group
        in flight, 0 when none), or None while that group must be waited for."""
        with self._lock:
            if self._sending is not None and self._sending[0] not in ORDER_FREE:
                self._wanted = True
                return None
            end = self._sending[1] if self._sending is not None else 0
            self._generation += 1
            self._sending, self._wanted = None, False
            return end
