"""Real processes for the tests of runs that survive: the ``ganbench`` console script as
users start it, ``mlflow server`` as users start it, and ways to watch them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

GANBENCH = str(Path(sys.executable).with_name("ganbench"))
#: A digits run that logs every 5 steps and scores every 100 (100 samples): a few seconds
#: of training per 100 steps on 2 CPU cores, long enough to be stopped in the middle.
SMALL_RUN = (
    *("run", "dcgan", "--dataset", "digits", "--batch-size", "16", "--resolution", "16"),
    *("--set", "ngf=8", "--set", "ndf=8", "--set", "log_every=5", "--no-progress"),
    *("--eval-every", "100", "--eval-samples", "100"),
)
MLFLOW = str(Path(sys.executable).with_name("mlflow"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, done: Callable[[], bool], timeout: float, proc=None) -> None:
    """Poll ``done`` every 20 ms; fail naming ``what`` on timeout or if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    while not done():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited ({proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def ganbench(*args: str, cwd: Path, **kwargs) -> subprocess.Popen:
    """``ganbench ARGS`` in the background, stdout and stderr into cwd/NAME.out/.err."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(kwargs.pop("env", {}))
    name = kwargs.pop("name", "ganbench")
    return subprocess.Popen(
        [GANBENCH, *args],
        cwd=cwd,
        env=env,
        stdout=(cwd / f"{name}.out").open("w"),
        stderr=(cwd / f"{name}.err").open("w"),
        **kwargs,
    )


def finish(proc: subprocess.Popen, timeout: float = 300) -> int:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


def logged_steps(run_dir: Path) -> list[int]:
    """Steps of the metrics a run has journaled so far (its outbox, flushed per record)."""
    path = run_dir / "outbox" / "journal.jsonl"
    if not path.exists():
        return []
    steps = []
    for line in path.read_bytes().splitlines(keepends=True):
        if line.endswith(b"\n"):
            op = json.loads(line)
            if op["op"] == "metrics":
                steps.append(op["step"])
    return steps


class MlflowServer:
    """``mlflow server`` on 127.0.0.1:PORT over a SQLite store, in its own process group
    (it starts job-runner children), stopped with SIGKILL like a crashed host."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.folder, self.port = folder, port or free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self, timeout: float = 120) -> MlflowServer:
        self.starts += 1
        log = (self.folder / f"server{self.starts}.log").open("w")
        self.proc = subprocess.Popen(
            [
                *(
                    MLFLOW,
                    "server",
                    "--backend-store-uri",
                    f"sqlite:///{self.folder / 'server.db'}",
                ),
                *("--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"),
            ],
            cwd=self.folder,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(f"mlflow server on port {self.port}", self.healthy, timeout, self.proc)
        return self

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)
        self.proc = None
