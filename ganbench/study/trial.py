"""One trial as a process: ``ganbench run`` (or ``ganbench resume``) started the way a user
starts it, nested under the study's MLflow parent run through ``mlflow.parentRunId``.

A separate process per trial, not a thread: each installs its own signal handlers and
checkpoints on SIGTERM, a crash or an out-of-memory kill of one trial leaves the study and
the other trials standing, and the memory of a finished trial is given back.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganbench.errors import NothingToResume, TrainingDiverged

#: How often a waiting worker looks at its trial's run folder (for the MLflow run id).
POLL_SECONDS = 0.5


@dataclass
class Outcome:
    """How a trial's process ended."""

    returncode: int
    run_id: str | None
    last_line: str
    stopped: bool = False

    @property
    def finished(self) -> bool:
        return self.returncode == 0

    @property
    def diverged(self) -> bool:
        return self.returncode == TrainingDiverged.exit_code

    @property
    def cannot_resume(self) -> bool:
        return self.returncode == CANNOT_RESUME


#: Exit code of ``ganbench resume`` when the run has no checkpoint to continue from.
CANNOT_RESUME = NothingToResume.exit_code


def run_command(
    architecture: str,
    dataset: str,
    seed: int,
    settings: Mapping[str, Any],
    *,
    run_dir: Path,
    device: str,
    tracking_uri: str,
    experiment: str,
    run_name: str,
    tags: Mapping[str, str],
    data_args: Sequence[str],
    nproc: int | None = None,
) -> list[str]:
    """The ``ganbench run`` command line of a fresh trial (data-parallel with ``nproc``)."""
    cmd = [sys.executable, "-m", "ganbench", "run", architecture, "--dataset", dataset]
    cmd += ["--nproc", str(nproc)] if nproc else []
    cmd += ["--seed", str(seed), "--device", device, "--run-dir", str(run_dir)]
    cmd += ["--tracking-uri", tracking_uri, "--experiment", experiment, "--run-name", run_name]
    for key, value in settings.items():
        cmd += ["--set", f"{key}={_text(value)}"]
    for key, value in tags.items():
        cmd += ["--tag", f"{key}={value}"]
    return [*cmd, *data_args, "--no-progress"]


def resume_command(
    ref: str,
    *,
    device: str,
    tracking_uri: str,
    data_args: Sequence[str],
    nproc: int | None = None,
    force: bool = False,
) -> list[str]:
    cmd = [sys.executable, "-m", "ganbench", "resume", ref, "--device", device]
    cmd += ["--nproc", str(nproc)] if nproc else []
    cmd += ["--force"] if force else []
    return [*cmd, "--tracking-uri", tracking_uri, *data_args, "--no-progress"]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


#: What stops a study (or a claim) and its trial processes: SIGTERM (preemption,
#: ``scancel``, ``kill``), SIGINT (Ctrl-C) and SIGUSR1 (SLURM's warning before the time
#: limit, ``--signal=USR1@SECONDS``), as they stop a single run.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)


class Launcher:
    """Starts trial processes and stops them all, once, when the study is stopped."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen[bytes]] = set()
        self.stop_signal: int | None = None

    def stop(self, signum: int) -> None:
        """Pass one SIGTERM to every trial, whichever signal stopped the study: each
        checkpoints and exits, resumable (a second stop kills them)."""
        with self._lock:
            first = self.stop_signal is None
            self.stop_signal = self.stop_signal or signum
            procs = list(self._running)
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM if first else signal.SIGKILL)

    @contextlib.contextmanager
    def stopping_on_signals(self, say: Callable[[str], None], what: str) -> Iterator[None]:
        """While inside: SIGTERM, SIGINT and SIGUSR1 (:data:`STOP_SIGNALS`) stop the
        running processes (:meth:`stop`), saying so once with ``what`` ("the running
        trials"...); :attr:`stop_signal` keeps the first, for the exit code (128 + it). The
        handlers are restored after. Only the main thread can take signals: elsewhere it
        does nothing."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = STOP_SIGNALS
        previous = {s: signal.getsignal(s) for s in handled}

        def handler(signum: int, frame: Any) -> None:
            if self.stop_signal is None:
                say(
                    f"{signal.Signals(signum).name}: stopping {what} (training checkpoints);"
                    " a second signal stops it at once"
                )
            self.stop(signum)

        for s in handled:
            signal.signal(s, handler)
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    def run(
        self,
        cmd: list[str],
        log_path: Path,
        *,
        run_dir: Path | None,
        on_run_id: Callable[[str], None],
        env: Mapping[str, str],
    ) -> Outcome:
        """Run ``cmd`` to its end with its output in ``log_path``; report the MLflow run
        id as soon as the run folder names it (so a study killed now can resume it)."""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            log.write(f"$ {' '.join(cmd)}\n".encode())
            log.flush()
            with self._lock:
                if self.stop_signal is not None:
                    return Outcome(128 + self.stop_signal, None, "not started", stopped=True)
                # Its own session: a Ctrl-C at the terminal reaches the study, which passes
                # exactly one SIGTERM on (two signals would stop a trial without a checkpoint).
                proc = subprocess.Popen(
                    cmd,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, **env},
                    start_new_session=True,
                )
                self._running.add(proc)
            run_id = None
            try:
                while proc.poll() is None:
                    if run_id is None and run_dir is not None:
                        run_id = folder_run_id(run_dir)
                        if run_id:
                            on_run_id(run_id)
                    time.sleep(POLL_SECONDS)
            finally:
                with self._lock:
                    self._running.discard(proc)
        if run_id is None and run_dir is not None:
            run_id = folder_run_id(run_dir)
            if run_id:
                on_run_id(run_id)
        return Outcome(
            proc.returncode,
            run_id,
            _last_line(log_path),
            stopped=self.stop_signal is not None,
        )


def folder_run_id(run_dir: Path) -> str | None:
    """The MLflow run id a run folder's run.json names, or None before it names one."""
    try:
        return str(json.loads((run_dir / "run.json").read_text())["run_id"])
    except (OSError, ValueError, KeyError):
        return None


def _last_line(path: Path) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines()]
    except OSError:
        return ""
    lines = [ln for ln in lines if ln]
    return lines[-1] if lines else ""
