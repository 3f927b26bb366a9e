"""Shared settings for ganbench's own tests (fixtures live in ganbench.testing)."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _test_cache(tmp_path_factory):
    """Runs started without --cache-dir keep their folders (and statistics) in a cache of
    the test session's, not in the user's ~/.cache/ganbench."""
    if "GANBENCH_CACHE_DIR" in os.environ:
        yield
        return
    os.environ["GANBENCH_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    yield
    del os.environ["GANBENCH_CACHE_DIR"]


# Small enough to run in seconds on 2 CPU cores, big enough to exercise every code path:
# two sample grids before the final one, an intermediate checkpoint, several log points.
TINY_RUN = (
    "--steps",
    "6",
    "--batch-size",
    "16",
    "--set",
    "ngf=8",
    "--set",
    "ndf=8",
    "--set",
    "log_every=2",
    "--set",
    "sample_every=3",
    "--set",
    "checkpoint_every=4",
    "--no-progress",
)


@pytest.fixture(scope="session")
def zoo_run(tmp_path_factory):
    """A tiny digits run, scored at its checkpoints, in a SQLite store of its own:
    (folder, tracking URI, run ID)."""
    from click.testing import CliRunner
    from mlflow import MlflowClient

    from ganbench.cli import cli

    folder = tmp_path_factory.mktemp("zoorun")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    args = ["run", "dcgan", "--dataset", "digits", *TINY_RUN, "--cache-dir", str(folder / "c")]
    args += ["--eval-every", "3", "--eval-samples", "100", "--metrics", "fid,is"]
    args += ["--tracking-uri", uri]
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    client = MlflowClient(tracking_uri=uri)
    [run] = client.search_runs([e.experiment_id for e in client.search_experiments()])
    return folder, uri, run.info.run_id


@pytest.fixture(scope="session")
def zoo_export(zoo_run, tmp_path_factory):
    """``ganbench zoo export`` of :func:`zoo_run`'s last checkpoint into a fresh zoo folder:
    (zoo folder, CLI output)."""
    from click.testing import CliRunner

    from ganbench.cli import cli

    _, uri, run_id = zoo_run
    out = tmp_path_factory.mktemp("zoo")
    args = ["zoo", "export", run_id, "--name", "tiny-digits", "--out", str(out)]
    result = CliRunner().invoke(cli, [*args, "--tracking-uri", uri])
    assert result.exit_code == 0, result.output
    return out, result.output
