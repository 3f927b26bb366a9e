"""A team's setup, for real: PostgreSQL from Debian's package and an MLflow server on it
with proxied artifacts (``deploy/team/server.sh``, as users start it), an Optuna storage
on the same server, and study workers with separate cache folders standing for separate
machines. Everything is counted in the databases themselves and in MLflow."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState
from processes import GANBENCH, finish, ganbench
from team_server import TeamServer, postgres_installed, team_server

pytestmark = pytest.mark.skipif(
    not postgres_installed(), reason="PostgreSQL is not installed (make postgres installs it)"
)

TINY = """
architecture = "dcgan"
datasets = ["digits"]
baseline = "base"
[settings]
batch_size = 16
resolution = 16
ngf = 8
ndf = 8
log_every = 2
eval_samples = 100
eval_metrics = "fid"
"""


def _study(folder: Path, name: str, seeds: int, steps: int, variants: str, **extra) -> Path:
    text = f'name = "{name}"\nseeds = {seeds}\n' + TINY
    text += f"steps = {steps}\neval_every = {steps}\nsample_every = {steps}\n"
    text += "".join(f"{k} = {v}\n" for k, v in extra.items())
    text += "\n[variants]\n" + textwrap.dedent(variants)
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


def _worker(server: TeamServer, path: Path, folder: Path, name: str, *extra: str, **kwargs):
    """A study worker as a machine of the team runs it: its own cache folder and working
    folder, the study storage and tracking server from the team's environment file."""
    home = folder / name
    home.mkdir(parents=True, exist_ok=True)
    env = {"MLFLOW_TRACKING_URI": server.tracking_uri, **kwargs.pop("env", {})}
    env["GANBENCH_STUDY_STORAGE"] = server.storage_url
    args = ["study", "run", str(path), "--cache-dir", str(home / "cache"), "--no-progress"]
    return ganbench(*args, *extra, cwd=home, name=name, env=env, **kwargs)


def _sql(server: TeamServer, database: str, query: str) -> list[tuple]:
    import psycopg

    url = f"postgresql://ganbench:{server.password}@127.0.0.1:{server.pg_port}/{database}"
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchall()


def _children(client: MlflowClient, name: str) -> tuple[object, list]:
    exp = client.get_experiment_by_name(f"study-{name}")
    runs = client.search_runs([exp.experiment_id])
    [parent] = [r for r in runs if r.data.tags.get("ganbench.study.role") == "parent"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return parent, children


@pytest.fixture(scope="module")
def server():
    with team_server() as running:
        yield running


@pytest.fixture(scope="module")
def three_workers(server, tmp_path_factory):
    """2 variants x 3 seeds run by three workers at once, and by one worker alone."""
    folder = tmp_path_factory.mktemp("three")
    variants = "base = {}\nlow-lr = { lr = 0.00005 }\n"
    path = _study(folder, "team3", 3, 8, variants)
    workers = [_worker(server, path, folder, f"w{i}") for i in range(3)]
    codes = [finish(p, 900) for p in workers]
    assert codes == [0, 0, 0], [
        (folder / f"w{i}" / f"w{i}.err").read_text()[-2000:] for i in range(3)
    ]
    alone = _study(folder, "team1", 3, 8, variants)
    one = _worker(server, alone, folder, "alone")
    assert finish(one, 900) == 0, (folder / "alone" / "alone.err").read_text()[-2000:]
    return folder


@pytest.mark.slow  # default suite time (README, Tests): `make slow` runs it
def test_three_workers_run_every_point_exactly_once(server, three_workers):
    folder = three_workers
    study = optuna.load_study(study_name="team3", storage=server.storage_url)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    points = sorted((t.params["variant"], t.params["seed"]) for t in complete)
    assert points == sorted((v, s) for v in ("base", "low-lr") for s in range(3))
    # counted in the Optuna database itself
    [(rows,)] = _sql(
        server,
        "optuna",
        "select count(*) from trials t join studies s on s.study_id = t.study_id"
        " where s.study_name = 'team3' and t.state = 'COMPLETE'",
    )
    assert rows == 6
    client = MlflowClient(server.tracking_uri)
    parent, children = _children(client, "team3")
    assert parent.info.status == "FINISHED"
    assert sorted(
        (r.data.tags["ganbench.study.variant"], r.data.params["seed"]) for r in children
    ) == sorted((v, str(s)) for v in ("base", "low-lr") for s in range(3))
    assert all(r.info.status == "FINISHED" for r in children)
    # and in MLflow's database: one finished run per point, under the parent
    [(finished,)] = _sql(
        server,
        "mlflow",
        "select count(*) from runs r join tags t on t.run_uuid = r.run_uuid"
        f" where t.key = 'mlflow.parentRunId' and t.value = '{parent.info.run_id}'"
        " and r.status = 'FINISHED'",
    )
    assert finished == 6
    ran = [int((folder / f"w{i}" / f"w{i}.out").read_text().split("this worker ran ")[1].split()[0])
           for i in range(3)]  # fmt: skip
    assert sum(ran) == 6 and sum(1 for n in ran if n) >= 2  # the work was shared
    caches = [folder / f"w{i}" / "cache" / "studies" / "team3" / "trials" for i in range(3)]
    trial_folders = [p.name for c in caches if c.exists() for p in c.iterdir()]
    assert len(trial_folders) == 6  # each trial ran on one "machine", in its own cache


@pytest.mark.slow  # default suite time (README, Tests): `make slow` runs it
def test_the_report_equals_the_one_worker_study(server, three_workers):
    """Same seeds, same CPU settings: three workers and one give the same numbers."""
    from ganbench.study.report import collect

    client = MlflowClient(server.tracking_uri)
    parents = [_children(client, name)[0].info.run_id for name in ("team3", "team1")]
    reports = [collect(client, run_id) for run_id in parents]
    shared, alone = ({row.name: row for row in r.rows} for r in reports)
    assert list(shared) == list(alone) == ["base", "low-lr"]
    for name in shared:
        assert shared[name].values() == pytest.approx(alone[name].values(), rel=1e-9, abs=1e-9)
    mine, theirs = shared["low-lr"].comparison, alone["low-lr"].comparison
    assert mine.difference.estimate == pytest.approx(theirs.difference.estimate, rel=1e-9)
    assert mine.superiority == theirs.superiority


@pytest.mark.slow  # default suite time (README, Tests): `make slow` runs it
def test_no_password_in_params_tags_logs_or_reports(server, three_workers):
    folder = three_workers
    client = MlflowClient(server.tracking_uri)
    runs = []
    for name in ("team3", "team1"):
        parent, children = _children(client, name)
        runs += [parent, *children]
    assert len(runs) == 14
    for run in runs:
        assert server.password not in repr(run.data.params) + repr(run.data.tags)
    parent = _children(client, "team3")[0]
    assert parent.data.params["storage"].startswith("postgresql://ganbench:***@127.0.0.1")
    # every file the workers wrote (logs, run folders, reports), what they printed, and
    # every artifact the server keeps (reports, checkpoints' metadata, logs)
    leaked = [
        p
        for root in (folder, server.artifacts)
        for p in root.rglob("*")
        if p.is_file() and server.password.encode() in p.read_bytes()
    ]
    assert leaked == []
    # the servers' own logs
    for log in ("mlflow.log", "postgres.log"):
        assert server.password not in (server.folder / log).read_text(errors="replace")


def test_a_wrong_password_is_one_line_that_does_not_show_it(server, tmp_path):
    wrong = server.storage_url.replace(server.password, "Wr0ngSecretXYZ")
    proc = subprocess.run(
        [GANBENCH, "study", "list", "--storage", wrong],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: cannot open the study storage")
    assert "postgresql://ganbench:***@" in lines[0]
    assert "Wr0ngSecretXYZ" not in proc.stdout + proc.stderr


def test_a_run_tracked_straight_into_postgresql_never_prints_the_password(server, tmp_path):
    """--tracking-uri postgresql://user:PASSWORD@... (no server): every line names the
    store without its password, and no param or tag holds it."""
    args = ["run", "dcgan", "--dataset", "digits", "--steps", "2", "--batch-size", "16"]
    args += ["--resolution", "16", "--set", "ngf=8", "--set", "ndf=8", "--eval-every", "0"]
    args += ["--tracking-uri", server.mlflow_store_url, "--cache-dir", str(tmp_path / "c")]
    proc = ganbench(*args, "--no-progress", cwd=tmp_path, name="direct")
    assert finish(proc, 300) == 0, (tmp_path / "direct.err").read_text()
    printed = (tmp_path / "direct.out").read_text() + (tmp_path / "direct.err").read_text()
    assert "postgresql://ganbench:***@127.0.0.1" in printed
    assert server.password not in printed
    run_id = printed.split("MLflow run ")[1].split()[0]
    run = MlflowClient(server.mlflow_store_url).get_run(run_id)
    assert server.password not in repr(run.data.params) + repr(run.data.tags)
    # the one file that keeps the URL (resume and sync connect with it) is its owner's alone
    run_json = tmp_path / "c" / "runs" / run_id / "run.json"
    assert server.password in run_json.read_text() and run_json.stat().st_mode & 0o777 == 0o600


@pytest.mark.slow  # default suite time (README, Tests): `make slow` runs it
def test_a_killed_workers_trial_is_resumed_by_another_from_the_proxied_checkpoint(server, tmp_path):
    """Worker A (its own host name and cache: another machine) is killed with -9 in the
    middle of its trial, and its machine's disk is gone. Worker B waits for Optuna's
    heartbeat grace period, takes the trial over and resumes the same MLflow run from the
    checkpoint A uploaded through the server, ending with the metric values of an
    uninterrupted run of the same point."""
    steps = 400
    path = _study(tmp_path, "takeover", 1, steps, "base = {}\n", checkpoint_every=100)
    fast = {"GANBENCH_STUDY_HEARTBEAT_SECONDS": "1", "GANBENCH_STUDY_GRACE_SECONDS": "6"}
    # A's own host name (a UTS namespace), so that B cannot tell by pid that A died
    cmd = ["unshare", "--uts", "sh", "-c", 'hostname machine-a && exec "$@"', "sh"]
    home = tmp_path / "a"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env |= fast | {"MLFLOW_TRACKING_URI": server.tracking_uri}
    env["GANBENCH_STUDY_STORAGE"] = server.storage_url
    a = subprocess.Popen(
        [*cmd, GANBENCH, "study", "run", str(path), "--cache-dir", str(home / "cache"),
         "--no-progress"],
        cwd=home, env=env, start_new_session=True,
        stdout=(home / "a.out").open("w"), stderr=(home / "a.err").open("w"),
    )  # fmt: skip
    deadline = time.monotonic() + 600
    checkpoint = None
    while checkpoint is None:  # A's run has uploaded a checkpoint through the server
        try:
            trials = optuna.load_study(study_name="takeover", storage=server.storage_url).trials
        except KeyError:  # A has not created the study yet
            trials = []
        run_id = trials[0].user_attrs.get("run_id") if trials else None
        found = sorted(server.artifacts.glob(f"*/{run_id}/artifacts/checkpoints/last.pt"))
        checkpoint = found[0] if run_id and found else None
        assert a.poll() is None, (home / "a.err").read_text()[-2000:]
        assert time.monotonic() < deadline, "A uploaded no checkpoint"
        time.sleep(0.5)
    time.sleep(1.0)
    os.killpg(a.pid, signal.SIGKILL)  # the machine dies: worker and trial alike
    a.wait()
    shutil.rmtree(home / "cache")  # and its disk with it
    study = optuna.load_study(study_name="takeover", storage=server.storage_url)
    [trial] = study.trials
    assert trial.state == TrialState.RUNNING and trial.user_attrs["host"] == "machine-a"

    b = _worker(server, path, tmp_path, "b", env=fast)
    assert finish(b, 900) == 0, (tmp_path / "b" / "b.err").read_text()[-3000:]
    said = (tmp_path / "b" / "b.err").read_text()
    assert "waiting for 1 trial(s) running elsewhere" in said
    assert f"resumes run {run_id}" in said
    log = next((tmp_path / "b" / "cache" / "studies" / "takeover" / "logs").glob("0001-*.log"))
    text = log.read_text()
    assert "fetched the checkpoint of step" in text and f"of {steps}" in text
    study = optuna.load_study(study_name="takeover", storage=server.storage_url)
    states = sorted(t.state.name for t in study.trials)
    assert states == ["COMPLETE", "FAIL"]
    client = MlflowClient(server.tracking_uri)
    parent, [child] = _children(client, "takeover")
    assert child.info.run_id == run_id and child.info.status == "FINISHED"
    assert parent.info.status == "FINISHED"

    # the same point without the interruption
    reference = _study(tmp_path, "takeover-ref", 1, steps, "base = {}\n", checkpoint_every=100)
    ref = _worker(server, reference, tmp_path, "ref")
    assert finish(ref, 900) == 0, (tmp_path / "ref" / "ref.err").read_text()[-2000:]
    _, [uninterrupted] = _children(client, "takeover-ref")
    for key in ("loss_d", "loss_g"):
        got = {m.step: m.value for m in client.get_metric_history(run_id, key)}
        want = {m.step: m.value for m in client.get_metric_history(uninterrupted.info.run_id, key)}
        assert got.keys() == want.keys() and max(got) == steps
        assert got[steps] == want[steps]
    fid = next(k for k in uninterrupted.data.metrics if k.startswith("digits-cnn/fid"))
    assert child.data.metrics[fid] == uninterrupted.data.metrics[fid]
