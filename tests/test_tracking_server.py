"""Logging over HTTP to a real ``mlflow server``, started the way users start it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import TINY_RUN
from mlflow import MlflowClient


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("server")
    port = _free_port()
    mlflow = Path(sys.executable).with_name("mlflow")
    log = (folder / "server.log").open("w")
    proc = subprocess.Popen(
        [
            str(mlflow),
            "server",
            "--backend-store-uri",
            f"sqlite:///{folder / 'server.db'}",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        cwd=folder,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"mlflow server did not start: {(folder / 'server.log').read_text()}")
        time.sleep(0.5)
    yield uri
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    log.close()


def test_run_logs_over_http(ganbench_run_cli, mlflow_server, tmp_path):
    result = ganbench_run_cli(
        "run",
        "dcgan",
        "--dataset",
        "digits",
        "--tracking-uri",
        mlflow_server,
        "--experiment",
        "over-http",
        *TINY_RUN,
    )
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "mlflow.db").exists()  # nothing went to the embedded store
    client = MlflowClient(tracking_uri=mlflow_server)
    [run] = client.search_runs([client.get_experiment_by_name("over-http").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["lr"] == "0.0002"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss_g")] == [2, 4, 6]
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"generator.pt", "samples_final.png", "checkpoints"} <= names


@pytest.mark.slow  # default suite time (README, Tests): `make slow` runs it
def test_four_runs_at_once_against_one_server(mlflow_server, tmp_path):
    from test_concurrent_runs import all_finished, run_four

    # a new experiment: the four also race to create it
    printed = run_four(tmp_path, mlflow_server, "--experiment", "concurrent")
    all_finished(mlflow_server, "concurrent")
    for text in printed:  # MLflow's run links and tracebacks stay off the terminal
        assert "View run" not in text and "Traceback" not in text and "INFO" not in text
