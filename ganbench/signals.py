"""Stopping a run cleanly on SIGTERM, SIGINT and SIGUSR1 (preemption, Ctrl-C, SLURM).

The handler only records the signal; the training loop sees it at the next step
boundary, writes a checkpoint and stops (:class:`Preempted`). Whatever the loop is in the
middle of (a step, a score, a checkpoint write) finishes first, so nothing is half done.
A second signal while the first is being honoured stops at once (:class:`StopNow`): the
run is then resumable from its previous checkpoint.

May import: ganbench.errors (and the package root ``ganbench``); tests/test_layers.py checks
it.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any

from ganbench.errors import Stopped

#: SIGUSR1 is what SLURM sends before a job's time limit with ``--signal=USR1@SECONDS``;
#: torchrun also passes SIGHUP and SIGQUIT on to its workers.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGHUP, signal.SIGQUIT)


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


class Preempted(Stopped):
    """Stopped by a signal after writing a checkpoint: exit code 128 + the signal."""


class StopNow(BaseException):
    """A second stop signal: leave now, whatever is running (like KeyboardInterrupt)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal_name(signum))
        self.signum = signum
        #: What the loop left behind (the step it can be resumed from), for the last line.
        self.note = "no checkpoint was written yet: start the run again"


class StopSignals:
    """Context manager: while inside, stop signals set :attr:`received` instead of
    killing the process. Outside the main thread it installs nothing."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum
            return
        raise StopNow(signum)

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
