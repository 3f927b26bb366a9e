"""Four ``ganbench run`` processes started at the same moment on one fresh SQLite store
(MLflow's schema creation races, then "database is locked"): all end FINISHED with all
their metrics, and the store opens afterwards. The same against one server is in
test_tracking_server.py."""

from __future__ import annotations

from conftest import TINY_RUN
from mlflow import MlflowClient
from processes import finish, ganbench

N = 4


def run_four(tmp_path, uri: str, *extra: str) -> list[str]:
    """Start four tiny runs at once; returns what each printed (stdout and stderr)."""
    procs = [
        ganbench(
            "run",
            "dcgan",
            "--dataset",
            "digits",
            *TINY_RUN,
            "--set",
            "threads=1",
            "--tracking-uri",
            uri,
            "--cache-dir",
            str(tmp_path / "cache"),
            "--run-name",
            f"run-{i}",
            *extra,
            cwd=tmp_path,
            name=f"run{i}",
        )
        for i in range(N)
    ]
    codes = [finish(p) for p in procs]
    printed = [
        (tmp_path / f"run{i}.out").read_text() + (tmp_path / f"run{i}.err").read_text()
        for i in range(N)
    ]
    assert codes == [0] * N, printed
    return printed


def all_finished(uri: str, experiment: str = "ganbench") -> None:
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert sorted(r.info.run_name for r in runs) == [f"run-{i}" for i in range(N)]
    for run in runs:
        assert run.info.status == "FINISHED"
        for key in ("loss_d", "loss_g", "d_real", "d_fake", "images_per_sec"):
            steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
            assert sorted(steps) == [2, 4, 6], (run.info.run_name, key)
        assert run.data.params["ngf"] == "8"


def test_four_runs_at_once_on_a_fresh_sqlite_store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'fresh.db'}"
    errors = run_four(tmp_path, uri)
    all_finished(uri)
    for err in errors:  # MLflow's own lines stay off the terminal
        assert "Creating initial MLflow database tables" not in err
        assert "INFO" not in err and "Traceback" not in err and "alembic" not in err
