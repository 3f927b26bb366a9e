"""Runs that survive, with real processes and real signals: ``kill -9`` then resume is bit
for bit the uninterrupted run; SIGTERM checkpoints, marks the run KILLED and exits 143; a
damaged newest checkpoint falls back; live runs and changed settings are refused."""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient
from processes import SMALL_RUN, finish, ganbench, logged_steps, wait_for

from ganbench.rundir import checkpoint
from ganbench.rundir.folder import RunFolder
from ganbench.testing import state_tensors

FMT = checkpoint.CHECKPOINT_FORMAT
STEPS = 300
CHECKPOINT_EVERY = 25
LONG_RUN = (
    *SMALL_RUN,
    *("--steps", str(STEPS), "--metrics", "fid,is", "--set", "sample_every=40"),
    *("--set", f"checkpoint_every={CHECKPOINT_EVERY}"),
)
#: Logged every step, but a wall-clock rate: the one metric a resume cannot reproduce.
TIMING = "images_per_sec"


def _start(folder: Path, name: str, *extra: str):
    folder.mkdir(exist_ok=True)
    uri = f"sqlite:///{folder / (name + '.db')}"
    run_dir = folder / name
    proc = ganbench(
        *LONG_RUN,
        "--tracking-uri",
        uri,
        "--run-dir",
        str(run_dir),
        "--cache-dir",
        str(folder / "cache"),
        *extra,
        cwd=folder,
        name=name,
    )
    return proc, uri, run_dir


def _the_run(uri: str):
    client = MlflowClient(tracking_uri=uri)
    [run] = client.search_runs([e.experiment_id for e in client.search_experiments()])
    return client, run


def _histories(client: MlflowClient, run_id: str) -> dict[str, list[tuple[int, float]]]:
    run = client.get_run(run_id)
    return {
        key: sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
        for key in run.data.metrics
    }


def _images(client: MlflowClient, run_id: str) -> list[tuple[str, int]]:
    names = [a.path for a in client.list_artifacts(run_id, "images") if a.path.endswith(".png")]
    return sorted((n.split("/")[-1].split("+")[0], int(n.split("+")[2])) for n in names)


def assert_same_run(reference: tuple, resumed: tuple) -> None:
    """Every tensor of the final checkpoint and generator equal (torch.equal), every metric
    history equal with one value per step, the same sample grids, once each."""
    (ref_uri, ref_dir), (uri, run_dir) = reference, resumed
    final = f"checkpoints/step-{STEPS:09d}.pt"
    a = checkpoint.load_file(ref_dir / final, FMT)
    b = checkpoint.load_file(run_dir / final, FMT)
    ta, tb = dict(state_tensors(a["state"])), dict(state_tensors(b["state"]))
    assert ta.keys() == tb.keys() and len(ta) > 50
    unequal = [k for k in ta if not torch.equal(ta[k], tb[k])]
    assert unequal == [], f"tensors differ after the resume: {unequal[:5]}"
    assert torch.equal(a["resume"]["fixed_z"], b["resume"]["fixed_z"])
    ga = checkpoint.load_file(ref_dir / "generator.pt", checkpoint.GENERATOR_FORMAT)
    gb = checkpoint.load_file(run_dir / "generator.pt", checkpoint.GENERATOR_FORMAT)
    assert all(torch.equal(v, gb["state_dict"][k]) for k, v in ga["state_dict"].items())

    (ca, ra), (cb, rb) = _the_run(ref_uri), _the_run(uri)
    assert rb.info.status == "FINISHED"
    ha, hb = _histories(ca, ra.info.run_id), _histories(cb, rb.info.run_id)
    assert ha.keys() == hb.keys() and {"loss_d", "digits-cnn/fid_100"} <= ha.keys()
    for key in ha:
        steps = [s for s, _ in hb[key]]
        assert len(steps) == len(set(steps)), f"{key}: a step logged twice: {steps}"
        if key == TIMING:
            assert [s for s, _ in ha[key]] == steps
        else:
            assert ha[key] == hb[key], key
    assert [s for s, _ in hb["loss_d"]] == list(range(5, STEPS + 1, 5))
    assert _images(ca, ra.info.run_id) == _images(cb, rb.info.run_id)
    assert len(set(_images(cb, rb.info.run_id))) == len(_images(cb, rb.info.run_id))
    # the loss-curve picture of the resumed run holds the whole history
    assert b["resume"]["history"].keys() == a["resume"]["history"].keys()
    assert torch.equal(b["resume"]["history"]["loss_g"], a["resume"]["history"]["loss_g"])


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run: (tracking URI, run folder)."""
    folder = tmp_path_factory.mktemp("reference")
    proc, uri, run_dir = _start(folder, "ref")
    assert finish(proc) == 0, (folder / "ref.err").read_text()
    return uri, run_dir


def test_kill_9_at_a_random_step_then_resume_is_bit_exact(reference, tmp_path):
    seed = random.randrange(1 << 30)
    target = random.Random(seed).randrange(CHECKPOINT_EVERY + 5, STEPS - 100, 5)
    proc, uri, run_dir = _start(tmp_path, "killed")
    wait_for(f"step {target}", lambda: target in logged_steps(run_dir), 240, proc)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(30) == -signal.SIGKILL, f"the run ended before the kill (seed {seed})"
    killed_at = max(logged_steps(run_dir))
    client, run = _the_run(uri)
    assert run.info.status == "RUNNING"  # a killed process cannot mark its run

    listing = ganbench("runs", "--tracking-uri", uri, cwd=tmp_path, name="runs")
    assert finish(listing) == 0
    [row] = [r for r in (tmp_path / "runs.out").read_text().splitlines() if run.info.run_id in r]
    last = max(s for s, p in _checkpoints(run_dir))
    assert "RUNNING" in row and " dead " in row, row
    assert f"from step {last}: ganbench resume {run_dir}" in row, row

    resumed = ganbench(
        "resume",
        run.info.run_id,
        "--tracking-uri",
        uri,
        "--no-progress",
        "--cache-dir",
        str(tmp_path / "cache"),
        cwd=tmp_path,
        name="resume",
    )
    assert finish(resumed) == 0, (tmp_path / "resume.err").read_text()
    err = (tmp_path / "resume.err").read_text()
    assert f"resumed from step {last} of {STEPS}" in err
    assert "Traceback" not in err and "INFO" not in err
    tags = client.get_run(run.info.run_id).data.tags
    assert tags["ganbench.resumes"] == "1"
    assert f"from step {last} (step-{last:09d}.pt) on host" in tags["ganbench.resume.1"]
    assert "ganbench.resumable" not in tags
    assert last < killed_at, f"killed at {killed_at}, after checkpoint {last} (seed {seed})"
    assert_same_run(reference, (uri, run_dir))


def _checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    return RunFolder.open(run_dir).checkpoints()


@pytest.fixture(scope="module")
def terminated(tmp_path_factory):
    """A run stopped by SIGTERM mid-run: (folder, process, URI, run folder)."""
    folder = tmp_path_factory.mktemp("sigterm")
    proc, uri, run_dir = _start(folder, "term")
    wait_for("step 130", lambda: 130 in logged_steps(run_dir), 240, proc)
    proc.send_signal(signal.SIGTERM)
    finish(proc)
    return folder, proc, uri, run_dir


def test_sigterm_checkpoints_marks_killed_tells_how_to_resume_and_exits_143(terminated):
    folder, proc, uri, run_dir = terminated
    assert proc.returncode == 128 + signal.SIGTERM
    err = (folder / "term.err").read_text().strip().splitlines()
    stopped = err[-1]
    step = int(stopped.split(" at step ")[1].split()[0])
    assert 130 <= step < STEPS
    assert stopped.startswith(f"stopped by SIGTERM at step {step} of {STEPS}: checkpoint ")
    assert stopped.endswith(f"Resume it with: ganbench resume {run_dir}")
    assert max(_checkpoints(run_dir))[0] == step
    assert checkpoint.load_file(max(_checkpoints(run_dir))[1], FMT)["step"] == step
    client, run = _the_run(uri)
    assert run.info.status == "KILLED"
    assert (
        run.data.tags["ganbench.resumable"]
        == f"from step {step}: ganbench resume {run.info.run_id}"
    )
    assert run.data.tags["checkpoint.last_step"] == str(step)
    # MLflow has the checkpoint too, for a resume on another machine
    got = client.download_artifacts(run.info.run_id, "checkpoints/last.pt", str(folder / "dl"))
    assert checkpoint.load_file(Path(got), FMT)["step"] == step
    logged = [s for s, _ in _histories(client, run.info.run_id)["loss_d"]]
    assert step - 5 < max(logged) <= step and len(logged) == len(set(logged))


def test_a_changed_hyperparameter_at_resume_is_refused_and_changes_nothing(terminated):
    folder, _, uri, run_dir = terminated
    args = [a for a in LONG_RUN]
    args[args.index("ngf=8")] = "ngf=16"
    proc = ganbench(
        *args,
        "--resume",
        str(run_dir),
        "--cache-dir",
        str(folder / "cache"),
        cwd=folder,
        name="changed",
    )
    assert finish(proc) == 2
    err = (folder / "changed.err").read_text().strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert "ngf=16 (the run has 8)" in err and "start a new run" in err
    _, run = _the_run(uri)
    assert run.info.status == "KILLED" and "ganbench.resumes" not in run.data.tags


def test_a_truncated_last_checkpoint_falls_back_to_the_one_before(terminated, reference):
    folder, _, uri, run_dir = terminated
    (newest_step, newest), (previous_step, _) = sorted(_checkpoints(run_dir), reverse=True)
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 3])
    proc = ganbench("resume", str(run_dir), "--no-progress", cwd=folder, name="fallback")
    assert finish(proc) == 0, (folder / "fallback.err").read_text()
    err = (folder / "fallback.err").read_text()
    [warning] = [line for line in err.splitlines() if newest.name in line]
    assert warning.startswith(f"warning: {newest.name} is truncated or not a ganbench file")
    assert warning.endswith(f"resuming from the checkpoint before it, step-{previous_step:09d}.pt")
    assert f"resumed from step {previous_step} of {STEPS}" in err
    _, run = _the_run(uri)
    assert run.info.status == "FINISHED" and "ganbench.resumable" not in run.data.tags
    assert previous_step < newest_step
    # falling back is exact too: everything the damaged checkpoint held is recomputed
    assert_same_run(reference, (uri, run_dir))


def test_a_run_whose_process_is_alive_is_not_resumed(tmp_path):
    # one thread, so that the refused commands get the other core
    proc, uri, run_dir = _start(tmp_path, "alive", "--steps", "100000", "--set", "threads=1")
    try:
        wait_for("the first metrics", lambda: logged_steps(run_dir), 240, proc)
        _, run = _the_run(uri)
        for ref in (str(run_dir), run.info.run_id):
            second = ganbench("resume", ref, "--tracking-uri", uri, cwd=tmp_path, name="second")
            assert finish(second) == 2
            err = (tmp_path / "second.err").read_text().strip()
            assert f"run {run.info.run_id} is still running (pid {proc.pid} on" in err, err
        listing = ganbench("runs", "--tracking-uri", uri, cwd=tmp_path, name="runs")
        assert finish(listing) == 0
        assert f"alive (pid {proc.pid})" in (tmp_path / "runs.out").read_text()
    finally:
        proc.send_signal(signal.SIGUSR1)  # SLURM's warning before the time limit
        assert finish(proc) == 128 + signal.SIGUSR1
    err = (tmp_path / "alive.err").read_text()
    assert "stopped by SIGUSR1 at step" in err
    # the niced writer may be far behind (another test worker trains on every core): the
    # stop's closing thread delivers the rest, and the run is KILLED, within the stop
    assert "records could not be delivered" not in err, err
    assert _the_run(uri)[1].info.status == "KILLED"


def test_a_second_ctrl_c_stops_at_once(tmp_path):
    """The first SIGINT waits for the step boundary; a second one, while the run is still
    busy scoring 50,000 samples, stops it at once, resumable from the last checkpoint."""
    proc, uri, run_dir = _start(tmp_path, "twice", "--eval-samples", "50000")
    wait_for("step 100 (scoring starts)", lambda: 100 in logged_steps(run_dir), 240, proc)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    assert finish(proc) == 128 + signal.SIGINT
    last = (tmp_path / "twice.err").read_text().strip().splitlines()[-1]
    assert last == (
        f"stopped at once by a second SIGINT; resumable from step 75: ganbench resume {run_dir}"
    )
    _, run = _the_run(uri)
    assert run.info.status == "KILLED"
    assert run.data.tags["ganbench.resumable"].startswith("from step 75: ganbench resume")
