"""A run's own folder: what it is, who holds it, its heartbeat and its checkpoints.

Every training run owns ``CACHE/runs/RUN_ID/`` (or ``--run-dir``)::

    run.json            which MLflow run, store and data this is (written once)
    lock                flock'ed by the process that trains the run, for its whole life
    heartbeat.json      time, step, host and pid, rewritten every few seconds
    checkpoints/        step-000001200.pt and the one before (atomic), best.pt
    outbox/             the tracking journal and what MLflow has of it (ganbench.tracking.outbox)
    logs/mlflow.log     MLflow's own log lines
    samples_final.png, loss_curves.png, generator.pt

The lock is the truth about liveness: the kernel drops a ``flock`` when its process dies,
``kill -9`` included, so a free lock on a RUNNING run means a dead process. The heartbeat
says when and where it was last seen, for people and for folders on other machines.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganbench.errors import UsageError
from ganbench.files.redact import safe_uri
from ganbench.files.sealed import atomic_path
from ganbench.rundir import checkpoint

FORMAT = "ganbench-run-folder/1"
#: Checkpoints kept besides best.pt: the newest, and the one before in case it is damaged.
KEEP_CHECKPOINTS = 2
_STEP_FILE = re.compile(r"^step-(\d+)\.pt$")


class RunInUse(UsageError):
    """Another live process holds the run (two processes must never write one run)."""


def host() -> str:
    return socket.gethostname()


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Whole or not at all; readable by its owner alone when it holds a store URL with a
    password (resume and sync connect with it; nothing prints it)."""
    uri = str(data.get("tracking_uri", ""))
    with atomic_path(path) as tmp:
        tmp.write_bytes((json.dumps(data, indent=1) + "\n").encode("utf-8"))
        if safe_uri(uri) != uri:
            tmp.chmod(0o600)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class Heartbeat:
    time: float
    step: int
    host: str
    pid: int

    def age(self) -> float:
        return max(0.0, time.time() - self.time)


class RunFolder:
    """One run's folder. Create it with :meth:`create`, reopen it with :meth:`open`."""

    def __init__(self, path: Path, info: dict[str, Any]) -> None:
        self.path = path
        self.info = info
        self._lock_fh: Any = None
        # The heartbeat thread and the training loop both beat: one write at a time (the
        # atomic write's temporary file is named for the process, not the thread).
        self._beat_lock = threading.Lock()

    # ---- what the folder is -------------------------------------------------------------
    @classmethod
    def create(cls, path: Path, info: dict[str, Any]) -> RunFolder:
        """A new folder for the run ``info["run_id"]``; an existing folder must be empty."""
        path = Path(path).expanduser().resolve()
        check_free(path)
        path.mkdir(parents=True, exist_ok=True)
        info = {"format": FORMAT, "created": time.time(), "host": host(), **info}
        _write_json(path / "run.json", info)
        return cls(path, info)

    @classmethod
    def open(cls, path: Path) -> RunFolder:
        path = Path(path).expanduser().resolve()
        info = _read_json(path / "run.json")
        if info is None or info.get("format") != FORMAT:
            raise UsageError(
                f"{path} is not a ganbench run folder (no readable run.json); pass the folder"
                " a run printed, or its MLflow run ID"
            )
        return cls(path, info)

    @staticmethod
    def is_run_folder(path: Path) -> bool:
        return (Path(path) / "run.json").is_file()

    @property
    def run_id(self) -> str:
        return str(self.info["run_id"])

    @property
    def tracking_uri(self) -> str:
        return str(self.info["tracking_uri"])

    def update_info(self, **values: Any) -> None:
        self.info.update(values)
        _write_json(self.path / "run.json", self.info)

    # ---- liveness -----------------------------------------------------------------------
    def lock(self) -> None:
        """Hold the folder for this process until it exits (or :meth:`unlock`).

        Raises :class:`RunInUse` naming the live process when another one holds it."""
        fh = (self.path / "lock").open("a+")
        for attempt in range(5):  # `ganbench runs` probes the lock for a moment; wait it out
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if attempt == 4:
                    fh.close()
                    raise RunInUse(self._in_use_message()) from None
                time.sleep(0.1)
        self._lock_fh = fh
        last = self.heartbeat()
        self.beat(last.step if last else 0)

    def unlock(self) -> None:
        if self._lock_fh is not None:
            fcntl.flock(self._lock_fh, fcntl.LOCK_UN)
            self._lock_fh.close()
            self._lock_fh = None

    def held_elsewhere(self) -> bool:
        """True while another process holds the lock (a live run)."""
        if self._lock_fh is not None:
            return False
        try:
            fh = (self.path / "lock").open("a+")
        except OSError:
            return False
        with fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(fh, fcntl.LOCK_UN)
        return False

    def _in_use_message(self) -> str:
        beat = self.heartbeat()
        who = f"pid {beat.pid} on {beat.host}, at step {beat.step}" if beat else "another process"
        seen = f", heartbeat {beat.age():.0f} s ago" if beat else ""
        return (
            f"run {self.run_id} is still running ({who}{seen}); two processes must not write"
            f" one run. Stop it first (kill -TERM {beat.pid if beat else 'PID'} checkpoints and"
            " exits), then resume"
        )

    def beat(self, step: int) -> None:
        with self._beat_lock:
            _write_json(
                self.path / "heartbeat.json",
                {"time": time.time(), "step": step, "host": host(), "pid": os.getpid()},
            )

    def heartbeat(self) -> Heartbeat | None:
        data = _read_json(self.path / "heartbeat.json")
        if not data:
            return None
        return Heartbeat(
            float(data["time"]), int(data["step"]), str(data["host"]), int(data["pid"])
        )

    # ---- checkpoints --------------------------------------------------------------------
    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def best_path(self) -> Path:
        return self.checkpoint_dir / "best.pt"

    def checkpoints(self) -> list[tuple[int, Path]]:
        """(step, path) of the step checkpoints, newest first."""
        found = []
        if self.checkpoint_dir.is_dir():
            for path in self.checkpoint_dir.iterdir():
                match = _STEP_FILE.match(path.name)
                if match:
                    found.append((int(match.group(1)), path))
        return sorted(found, reverse=True)

    def write_checkpoint(self, state: dict[str, Any], step: int) -> Path:
        """Write ``step-N.pt`` atomically, then delete all but the newest two: the old
        ones go only after the new one is on disk."""
        path = checkpoint.save_atomic(state, self.checkpoint_dir / f"step-{step:09d}.pt")
        for _, old in self.checkpoints()[KEEP_CHECKPOINTS:]:
            with contextlib.suppress(FileNotFoundError):
                old.unlink()
        return path

    def write_best(self, state: dict[str, Any]) -> Path:
        return checkpoint.save_atomic(state, self.best_path)


def check_free(path: Path) -> None:
    """Refuse a ``--run-dir`` that already holds a run (or anything else)."""
    if RunFolder.is_run_folder(path):
        info = _read_json(path / "run.json") or {}
        raise UsageError(
            f"{path} already holds run {info.get('run_id', '?')}; continue it with"
            f" `ganbench resume {path}`, or pick an empty --run-dir"
        )
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UsageError(f"--run-dir {path} exists and is not empty; pick an empty or new folder")


def default_path(cache: Path, run_id: str) -> Path:
    return cache / "runs" / run_id
