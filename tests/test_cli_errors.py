"""Bad input: one clear line naming the problem and the fix, and the documented exit code."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
import torch
from conftest import TINY_RUN
from mlflow import MlflowClient


def _error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["run", "dcgn", "--dataset", "digits"],
            "unknown architecture 'dcgn'. Did you mean dcgan?",
        ),
        (["run", "dcgan", "--dataset", "lsunn"], "unknown dataset 'lsunn'. Did you mean lsun?"),
        (
            ["run", "dcgan", "--dataset", "digits", "--set", "learning_rate=0.1"],
            "unknown hyperparameter 'learning_rate' in --set",
        ),
        (["run", "dcgan", "--dataset", "digits", "--set", "lr"], "--set expects key=value"),
        (
            ["run", "dcgan", "--dataset", "digits", "--resolution", "48"],
            "cannot be built at resolution 48; use one of 16, 32, 64, 128, 256",
        ),
        (
            ["run", "dcgan", "--dataset", "digits", "--steps", "3", "--epochs", "1"],
            "give --steps or --epochs, not both",
        ),
        (
            ["run", "dcgan", "--dataset", "digits", "--batch-size", "5000"],
            "batch size 5000 is larger than the 1437 images",
        ),
        (["run", "dcgan", "--dataset", "digits", "--device", "tpu"], "unknown device 'tpu'"),
        (
            ["run", "dcgan", "--dataset", "digits", "--config", "missing.toml"],
            "config file missing.toml does not exist",
        ),
    ],
)
def test_usage_errors_exit_2(ganbench_run_cli, args, message):
    result = ganbench_run_cli(*args, "--no-progress")
    assert result.exit_code == 2, result.output
    assert message in _error_line(result)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_a_gpu_is_a_usage_error(ganbench_run_cli):
    result = ganbench_run_cli("run", "dcgan", "--dataset", "digits", "--device", "cuda")
    assert result.exit_code == 2
    assert "sees no CUDA GPU here; use --device cpu" in _error_line(result)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_tracking_server_fails_fast(ganbench_run_cli):
    uri = f"http://127.0.0.1:{_free_port()}"
    result = ganbench_run_cli(
        "run", "dcgan", "--dataset", "digits", "--tracking-uri", uri, *TINY_RUN
    )
    assert result.exit_code == 1
    line = _error_line(result)
    assert f"cannot reach the MLflow tracking server at {uri}" in line
    assert "--tracking-uri sqlite:///mlflow.db" in line


def test_nan_losses_fail_the_run_and_mark_it_failed(ganbench_run_cli, ganbench_tracking_uri):
    # An absurd learning rate really does blow the weights up to inf/NaN within two steps.
    result = ganbench_run_cli(
        "run",
        "dcgan",
        "--dataset",
        "digits",
        "--tracking-uri",
        ganbench_tracking_uri,
        *TINY_RUN,
        "--set",
        "lr=1e30",
    )
    assert result.exit_code == 3, result.output  # its own code: a study records it as a result
    line = _error_line(result)
    assert "training diverged at step 2" in line and "Lower the learning rate" in line
    client = MlflowClient(tracking_uri=ganbench_tracking_uri)
    [run] = client.search_runs([client.get_experiment_by_name("ganbench").experiment_id])
    assert run.info.status == "FAILED"
    assert run.data.tags["ganbench.diverged"].startswith("step 2: ")
    assert run.data.params["lr"] == "1e+30"


def test_console_script_exit_code_and_one_line(tmp_path):
    """The installed ``ganbench`` command, started the way users start it."""
    ganbench = [sys.executable, "-m", "ganbench"]
    done = subprocess.run(
        [*ganbench, "run", "dcgan", "--dataset", "nope"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "Error: unknown dataset 'nope'. Available: celeba, cifar10, digits, fashion-mnist,"
        " imagefolder, imagenet, lsun, mnist, svhn (`ganbench plugins` shows where each"
        " comes from)."
    ]
    assert not (tmp_path / "mlflow.db").exists()  # nothing written for a rejected command


def test_plugins_command_lists_sources_and_registrations(ganbench_run_cli):
    result = ganbench_run_cli("plugins")
    assert result.exit_code == 0
    assert "dcgan  (entry point ganbench_plugins.dcgan from ganbench" in result.output
    assert "architectures: dcgan" in result.output and "datasets: digits" in result.output
