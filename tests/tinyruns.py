"""Tiny DCGAN runs on digits through the command line, in-process, for the tests of runs
that resume deliberately and checkpoints that prove themselves: ~1 s of training each,
into a real SQLite MLflow store."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient

from ganbench.rundir import checkpoint
from ganbench.rundir.folder import RunFolder
from ganbench.testing import state_tensors

FMT = checkpoint.CHECKPOINT_FORMAT
STEPS, STOP, EVERY = 12, 10, 4
#: 16 px digits, narrow networks, one thread, no scores, no grids between: ~1 s a run.
TINY = (
    *("--dataset", "digits", "--resolution", "16", "--batch-size", "64"),
    *("--set", "ngf=8", "--set", "ndf=8", "--set", "log_every=2", "--set", "threads=1"),
    *("--set", "sample_every=1000", "--set", f"checkpoint_every={EVERY}"),
    *("--eval-every", "0", "--steps", str(STEPS), "--seed", "5", "--no-progress"),
)


class StopAt:
    """Stands in for the run's stop signals: SIGTERM "arrives" after step ``step``."""

    def __init__(self, step: int) -> None:
        self.step, self.asked = step, 0

    def __enter__(self) -> StopAt:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    @property
    def received(self) -> int | None:
        self.asked += 1
        return signal.SIGTERM if self.asked >= self.step else None


def invoke(folder: Path, *args: str):
    from click.testing import CliRunner

    from ganbench.cli import cli

    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        return CliRunner().invoke(cli, list(args))


def the_run(uri: str, run_dir: Path):
    client = MlflowClient(tracking_uri=uri)
    return client, client.get_run(RunFolder.open(run_dir).run_id)


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("Error:")]


def uri_of(store: Path) -> str:
    return f"sqlite:///{store / 'm.db'}"


def train(store: Path, run_dir: Path, *extra: str, stop: int | None = None):
    """``ganbench run dcgan`` TINY (``extra`` after it) into ``store``'s MLflow store, in
    ``run_dir``; ``stop``: SIGTERM "arrives" after that step. Returns click's Result."""
    args = ("run", "dcgan", *TINY, *extra, "--tracking-uri", uri_of(store))
    args += ("--cache-dir", str(store / "cache"), "--run-dir", str(run_dir))
    threads = torch.get_num_threads()  # the run sets one; the tests after it get theirs
    try:
        with pytest.MonkeyPatch.context() as mp:
            if stop is not None:
                mp.setattr("ganbench.training.launch.StopSignals", lambda: StopAt(stop))
            return invoke(store, *args)
    finally:
        torch.set_num_threads(threads)


def stopped_run(store: Path, folder: Path) -> tuple[str, Path]:
    """A run stopped after step STOP: (tracking URI, run folder) holding steps 8 and 10."""
    run_dir = folder / "run"
    stopped = train(store, run_dir, stop=STOP)
    assert stopped.exit_code == 128 + signal.SIGTERM, stopped.output
    assert [s for s, _ in RunFolder.open(run_dir).checkpoints()] == [STOP, 8]
    return uri_of(store), run_dir


def assert_as_uninterrupted(reference: Path, run_dir: Path, steps: int = STEPS) -> None:
    """The final checkpoint's every tensor, the loss history and the generator equal."""
    final = f"checkpoints/step-{steps:09d}.pt"
    a, b = checkpoint.load_file(reference / final, FMT), checkpoint.load_file(run_dir / final, FMT)
    ta, tb = dict(state_tensors(a["state"])), dict(state_tensors(b["state"]))
    assert ta.keys() == tb.keys() and len(ta) > 30
    assert [k for k in ta if not torch.equal(ta[k], tb[k])] == []
    for key in ("loss_d", "loss_g", "d_real", "d_fake"):
        assert torch.equal(a["resume"]["history"][key], b["resume"]["history"][key]), key
    ga = checkpoint.load_file(reference / "generator.pt", checkpoint.GENERATOR_FORMAT)
    gb = checkpoint.load_file(run_dir / "generator.pt", checkpoint.GENERATOR_FORMAT)
    assert all(torch.equal(v, gb["state_dict"][k]) for k, v in ga["state_dict"].items())


def reference_run(store: Path) -> Path:
    """The uninterrupted run of ``STEPS`` steps in ``store``, that the others must equal."""
    done = train(store, store / "reference")
    assert done.exit_code == 0, done.output
    return store / "reference"
