"""A team's tracking server for the tests, started by ``deploy/team/server.sh`` exactly as
a user starts it: PostgreSQL from Debian's package (databases ``mlflow`` and ``optuna``) and
an ``mlflow server`` on it that proxies artifacts."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from processes import MLFLOW, free_port

SERVER_SCRIPT = Path(__file__).parents[1] / "deploy" / "team" / "server.sh"


@dataclass(frozen=True)
class TeamServer:
    folder: Path
    pg_port: int
    mlflow_port: int
    #: A distinctive password, so that a test can look for it in every output.
    password: str

    @property
    def storage_url(self) -> str:
        """Optuna's storage, as a user gives it (the password in the URL)."""
        return f"postgresql://ganbench:{self.password}@127.0.0.1:{self.pg_port}/optuna"

    @property
    def mlflow_store_url(self) -> str:
        """MLflow's own store on the server's PostgreSQL (what the server serves)."""
        return f"postgresql://ganbench:{self.password}@127.0.0.1:{self.pg_port}/mlflow"

    @property
    def tracking_uri(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"

    @property
    def artifacts(self) -> Path:
        """Where the server keeps what it proxies (workers never read it directly)."""
        return self.folder / "artifacts"

    def script(self, action: str) -> subprocess.CompletedProcess:
        env = {
            **os.environ,
            "GANBENCH_PG_PORT": str(self.pg_port),
            "GANBENCH_MLFLOW_PORT": str(self.mlflow_port),
            "GANBENCH_PG_PASSWORD": self.password,
            "GANBENCH_MLFLOW": MLFLOW,
        }
        return subprocess.run(
            [str(SERVER_SCRIPT), action, str(self.folder)],
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )


def postgres_installed() -> bool:
    return bool(shutil.which("pg_ctl")) or any(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))


@contextmanager
def team_server() -> Iterator[TeamServer]:
    """Start the servers in a fresh folder under /tmp (PostgreSQL runs as the ``postgres``
    user when the tests run as root, and pytest's own temporary folders are closed to
    other users), and stop them after."""
    folder = Path(tempfile.mkdtemp(prefix="ganbench-team-", dir="/tmp"))
    server = TeamServer(folder, free_port(), free_port(), f"Pw{secrets.token_hex(8)}")
    started = server.script("start")
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield server
    finally:
        server.script("stop")
        shutil.rmtree(folder, ignore_errors=True)
