"""pytest fixtures for ganbench and for authors of third-party ganbench plugins.

Registered through the ``pytest11`` entry point, so any project that installs ganbench can
use them: a fresh plugin manager's registries, a CLI runner, and a throwaway SQLite store.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from click.testing import CliRunner, Result

    from ganbench.plugins import Registries


@pytest.fixture
def ganbench_registries() -> Registries:
    """The registries as the installed plugins fill them (a new manager per test)."""
    from ganbench.plugins import load_registries

    return load_registries()


@pytest.fixture
def tracking_uri(tmp_path: Path) -> str:
    """A SQLite MLflow store of the test's own, with its artifacts beside it."""
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture
def cli_runner() -> CliRunner:
    from click.testing import CliRunner

    return CliRunner()


@pytest.fixture
def run_cli(cli_runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Call ``ganbench ARGS...`` in-process from the test's own folder; returns the Result."""
    from ganbench.cli import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    def invoke(*args: str) -> Result:
        return cli_runner.invoke(cli, list(args), catch_exceptions=True)

    return invoke


def state_tensors(obj: object, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(path, tensor) for every tensor in a nested state (dicts, lists, tuples), so tests
    can compare two checkpoints' states tensor by tensor."""
    import torch

    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from state_tensors(v, f"{prefix}/{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from state_tensors(v, f"{prefix}/{i}")
