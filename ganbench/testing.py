"""pytest fixtures for ganbench and for authors of third-party ganbench plugins.

Registered through the ``pytest11`` entry point, so any project that installs ganbench can
use them: a fresh plugin manager's registries, a CLI runner, and a throwaway SQLite store.
Every fixture's name starts with ``ganbench_``, so installing ganbench never shadows or
collides with another project's fixtures.

May import: ganbench.cli, ganbench.plugins (and the package root ``ganbench``);
tests/test_layers.py checks it.
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
def ganbench_tracking_uri(tmp_path: Path) -> str:
    """A SQLite MLflow store of the test's own, with its artifacts beside it."""
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture
def ganbench_cli_runner() -> CliRunner:
    """click's runner, for ``ganbench`` commands in-process."""
    from click.testing import CliRunner

    return CliRunner()


@pytest.fixture
def ganbench_run_cli(
    ganbench_cli_runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Call ``ganbench ARGS...`` in-process from the test's own folder; returns the Result."""
    from ganbench.cli import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    def invoke(*args: str) -> Result:
        return ganbench_cli_runner.invoke(cli, list(args), catch_exceptions=True)

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


#: What a traced step must not call: each reads a tensor back to the host.
HOST_READS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__")


def trace_step_whole(model: Any, real: Any) -> tuple[Any, list[str]]:
    """Trace ``model.train_step(real)`` with ``torch.compile(fullgraph=True)``: (the step's
    outputs, the host reads found in the traced graph). Raises on any graph break.

    For plugin authors who set ``GanModel.graph_safe_step``: a step that traces whole into
    one graph without host reads can be captured as a CUDA graph. Dynamo traces
    ``backward()`` and ``autograd.grad`` into the graph (``trace_autograd_ops``); a host
    read that feeds no branch may trace without a break, so the graph's nodes are
    searched for them too. Run one eager step first (Adam's state must exist)."""
    import torch

    graphs: list[Any] = []

    def record(gm: Any, example_inputs: Any) -> Any:
        graphs.append(gm)
        return gm.forward

    with torch._dynamo.config.patch(trace_autograd_ops=True, capture_scalar_outputs=False):
        torch._dynamo.reset()
        out = torch.compile(model.train_step, fullgraph=True, backend=record)(real)
    reads = []
    for gm in graphs:
        for node in gm.graph.nodes:
            name = str(getattr(node.target, "__name__", node.target))
            if name in HOST_READS or "_local_scalar_dense" in name:
                reads.append(f"{node.op} {name} ({node.name})")
    return out, reads
