"""The outbox of a short command (eval, probe, analyze, report): its results reach MLflow
the way a training run's records do, through a journal on disk, and are never lost.

Each invocation gets a run folder of its own, ``CACHE/outbox/RUN_ID-COMMAND-TIME-PID/``
(``run.json`` names the MLflow run, its store and the command), so ``ganbench sync FOLDER``
delivers what is left exactly as it does for a training run. The command writes its
result files completely first, then journals its records; at the end it gives the store a
bounded time to take them. A store that is away costs one line that names the folder and
the ``ganbench sync`` that delivers it, and exit code 1: the results are saved and printed
already. MLflow's own synchronous client would instead retry each request for minutes,
then print a traceback, and lose the results.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ganbench.errors import TrackingError
from ganbench.files.redact import safe_uri

if TYPE_CHECKING:
    from ganbench.runs.target import Target
    from ganbench.tracking.outbox.tracker import OutboxTracker

#: Seconds a command waits at its end for an absent store (training waits 120).
DEFAULT_WAIT = 30.0


def utc_stamp() -> str:
    """Now, in UTC, for names that sort by time: ``20261204T153012Z``."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


def outbox_root(cache: Path) -> Path:
    """Where the command outboxes live: ``CACHE/outbox``."""
    return Path(cache) / "outbox"


class CommandOutbox:
    """One command's folder, journal and writer; :meth:`finish` waits (bounded) and says
    what happened in one line.

    ``keep``: whether the folder holds the command's only copy of its results (eval,
    probe), and stays after delivery; otherwise (analyze, report: their results are in
    the user's ``--out``) a delivered folder is removed.
    """

    def __init__(self, target: Target, command: str, cache: Path, *, keep: bool) -> None:
        from ganbench.tracking.outbox.tracker import OutboxTracker
        from ganbench.tracking.store import fail_fast_http, route_mlflow_logs
        from ganbench.tracking.tracker import MlflowTracker

        fail_fast_http()
        self.target, self.command, self.keep = target, command, keep
        #: This invocation's own stamp (``20261204T153012Z-4711``, ``-2`` after it for a
        #: second one in the same process and second): names its folder and its files.
        self.stamp = f"{utc_stamp()}-{os.getpid()}"
        for n in itertools.count(2):
            if not (outbox_root(cache) / f"{target.run_id}-{command}-{self.stamp}").exists():
                break
            self.stamp = f"{utc_stamp()}-{os.getpid()}-{n}"
        name = f"{target.run_id}-{command}-{self.stamp}"
        info = {
            "run_id": target.run_id,
            "tracking_uri": target.tracking_uri,
            "command": command,
            "argv": sys.argv,
        }
        if target.experiment_id:
            info["experiment_id"] = target.experiment_id
        from ganbench.rundir.folder import RunFolder  # torch: not at import (--help stays light)

        self.folder = RunFolder.create(outbox_root(cache) / name, info)
        self.folder.lock()
        self.path = self.folder.path
        # MLflow's and the writer's lines during an outage go to files here: the user gets
        # one line at the end (training shows the writer's, as news during a long run).
        route_mlflow_logs(self.path / "logs" / "mlflow.log")
        self._log = self.path / "logs" / "tracking.log"
        run = MlflowTracker.detached(target.tracking_uri, target.run_id, target.experiment_id)
        self.tracker: OutboxTracker = OutboxTracker(
            run, self.folder, self._write_log, background=False
        )

    def _write_log(self, line: str) -> None:
        with self._log.open("a", encoding="utf-8") as fh:
            fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")

    def keep_file(self, path: Path, under: str) -> Path:
        """A copy of ``path`` in the folder (``under/NAME``) for the journal to upload:
        the user may move or delete the original before the store is back. A hard link
        where the filesystem allows it (no second copy on disk; the original is replaced,
        never rewritten, by ganbench's atomic writes), else a copy."""
        dest = self.path / under / Path(path).name
        dest.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            dest.unlink()
        try:
            os.link(path, dest)
        except OSError:
            shutil.copy2(path, dest)
        return dest

    def finish(self, wait: float, done: str) -> None:
        """Give the store ``wait`` seconds to take every record. ``done`` says what the
        command did (for the one line): records left, or refused, are an error (exit 1)
        that names the folder they wait in; delivered ones leave the results only."""
        try:
            left = self.tracker.close(wait)
        except BaseException:  # Ctrl-C while waiting: the records stay, say where
            self.folder.unlock()
            from ganbench.tracking.outbox.journal import pending_in

            if pending_in(self.path / "outbox"):
                print(f"tracking records wait in {self.path}: ganbench sync {self.path}",
                      file=sys.stderr)  # fmt: skip
            raise
        writer = self.tracker.writer
        rejected = writer.rejected_ops
        self.folder.unlock()
        uri = self.target.tracking_uri
        failure = getattr(writer, "failure", None)  # the writer thread stopped for good
        if left and failure:
            raise TrackingError(
                f"{done}, but its {left} records could not be delivered ({failure}); they"
                f" wait in {self.path}: ganbench sync {self.path}"
            )
        if left:
            raise TrackingError(
                f"{done}, but the MLflow store at {safe_uri(uri)} did not answer within"
                f" {wait:.0f} s:"
                f" {left} records wait in {self.path}. Deliver them once it is back:"
                f" ganbench sync {self.path}"
            )
        if rejected:
            first = (getattr(writer, "rejections", None) or [""])[0]
            why = f" ({first})" if first else ""
            raise TrackingError(
                f"{done}, but MLflow refused {rejected} record(s) for run"
                f" {self.target.run_id} in {safe_uri(uri)}{why}; they are kept, with the reason, in"
                f" {self.path / 'outbox' / 'rejected.jsonl'}"
            )
        if not self.keep:
            shutil.rmtree(self.path, ignore_errors=True)

    def describe(self) -> str:
        return self.target.describe()
