"""A real ``mlflow server`` that goes away mid-run (SIGKILL, like a crashed host): training
goes on, and every record arrives once the server is back, exactly once; if it never comes
back, the run says so in one line and ``ganbench sync`` delivers everything later."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient
from processes import SMALL_RUN, MlflowServer, finish, ganbench, logged_steps, wait_for

RUN = (*SMALL_RUN, "--set", "sample_every=50", "--set", "checkpoint_every=50", "--set", "threads=1")


def _arrived(uri: str, steps: int) -> MlflowClient:
    """Everything of the run is in the store, once: FINISHED, each logged step once, the
    sample grids once each, the artifacts."""
    client = MlflowClient(tracking_uri=uri)
    [run] = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert run.info.status == "FINISHED"
    run_id = run.info.run_id
    for key in ("loss_d", "loss_g", "d_real", "d_fake", "images_per_sec"):
        logged = [m.step for m in client.get_metric_history(run_id, key)]
        assert sorted(logged) == list(range(5, steps + 1, 5)), key
    fid = [m.step for m in client.get_metric_history(run_id, "digits-cnn/fid_100")]
    assert sorted(fid) == list(range(100, steps + 1, 100))
    grids = [a.path for a in client.list_artifacts(run_id, "images") if a.path.endswith(".png")]
    assert sorted(int(g.split("+")[2]) for g in grids) == list(range(50, steps + 1, 50))
    names = {a.path for a in client.list_artifacts(run_id)}
    assert {"generator.pt", "samples_final.png", "loss_curves.png", "checkpoints"} <= names
    assert {a.path for a in client.list_artifacts(run_id, "checkpoints")} == {
        "checkpoints/last.pt",
        "checkpoints/best.pt",
    }
    assert run.data.params["steps"] == str(steps)
    return client


def _train_against(server: MlflowServer, folder: Path, steps: int, *extra: str):
    """A run logging to ``server``, once it has logged its first metrics: (process, folder)."""
    run_dir = folder / "run"
    args = ["--steps", str(steps), "--tracking-uri", server.uri, "--run-dir", str(run_dir)]
    proc = ganbench(*RUN, *args, "--cache-dir", str(folder / "cache"), *extra, cwd=folder)
    wait_for("the first metrics", lambda: logged_steps(run_dir), 240, proc)
    return proc, run_dir


def test_a_server_that_goes_away_mid_run_and_comes_back_loses_nothing(tmp_path):
    server = MlflowServer(tmp_path).start()
    try:
        proc, run_dir = _train_against(server, tmp_path, 400)
        server.stop()
        away_from = max(logged_steps(run_dir))
        err = tmp_path / "ganbench.err"
        wait_for("the outage noticed", lambda: "is not answering" in err.read_text(), 120, proc)
        wait_for(
            "training during the outage",
            lambda: max(logged_steps(run_dir)) >= away_from + 50,
            120,
            proc,
        )
        server.start()  # same port, same store
        assert finish(proc) == 0, err.read_text()
        _arrived(server.uri, 400)
    finally:
        server.stop()
    lines = err.read_text().splitlines()
    assert sum("is not answering" in line for line in lines) == 1
    assert sum("answers again after" in line for line in lines) == 1
    assert "Traceback" not in err.read_text() and "WARNING" not in err.read_text()


@pytest.mark.slow  # default suite time (README, Tests): `make slow` runs it
def test_a_server_that_never_comes_back_exits_1_in_one_line_then_sync_delivers(tmp_path):
    server = MlflowServer(tmp_path).start()
    try:
        proc, run_dir = _train_against(server, tmp_path, 200, "--tracking-wait", "3")
        server.stop()
        assert finish(proc) == 1
        err = (tmp_path / "ganbench.err").read_text()
        assert "Traceback" not in err
        [error] = [line for line in err.splitlines() if line.startswith("Error:")]
        assert error == err.strip().splitlines()[-1]
        assert error.startswith(
            f"Error: training finished (200 steps; checkpoint and generator in {run_dir})"
        )
        assert error.endswith(f"Deliver them once it is back: ganbench sync {run_dir}")
        assert (run_dir / "generator.pt").is_file()  # the training itself is safe

        early = ganbench("sync", str(run_dir), cwd=tmp_path, name="early")
        assert finish(early) == 1
        assert "cannot reach the MLflow tracking server" in (tmp_path / "early.err").read_text()

        server.start()
        sync = ganbench("sync", str(run_dir), "--no-progress", cwd=tmp_path, name="sync")
        assert finish(sync) == 0, (tmp_path / "sync.err").read_text()
        out = (tmp_path / "sync.out").read_text()
        assert "delivered" in out and "(now FINISHED)" in out
        _arrived(server.uri, 200)
        again = ganbench("sync", str(run_dir), cwd=tmp_path, name="again")
        assert finish(again) == 0
        assert "nothing to deliver" in (tmp_path / "again.out").read_text()
    finally:
        server.stop()
