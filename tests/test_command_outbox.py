"""The short commands against a real ``mlflow server`` that is stopped (SIGKILL, like a
crashed host): ``eval`` and ``probe`` finish in bounded time, print and save their
results, and exit 1 in one line naming their outbox folder; ``ganbench sync FOLDER``
delivers every value exactly once after the server is back. ``zoo export`` never writes
an entry without the scores the run has: from the run's folder when the server is away,
else one line and nothing written, and it completes once the server is back."""

from __future__ import annotations

import json
import os
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import TINY_RUN
from mlflow import MlflowClient
from processes import MlflowServer, finish, ganbench

from ganbench.cli import cli
from ganbench.tracking.outbox.delivery import logged_images
from ganbench.tracking.outbox.journal import pending_in, read_ops

STEP = 6  # TINY_RUN's last step: the checkpoint the commands score
#: Seconds a command may take with the server stopped (measured: about 10-20 s each on 2
#: busy cores, mostly importing torch and scoring; MLflow's own retries took 4-8 minutes).
BOUND = 90


@dataclass
class Served:
    folder: Path
    server: MlflowServer
    run_id: str
    cache: Path

    @property
    def run_dir(self) -> Path:
        return self.cache / "runs" / self.run_id

    def client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.server.uri)

    def up(self) -> None:
        if not self.server.healthy():
            self.server.start()

    def down(self) -> None:
        self.server.stop()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A tiny digits run scored at steps 3 and 6, logged into a real ``mlflow server``."""
    folder = tmp_path_factory.mktemp("served")
    server = MlflowServer(folder).start()
    cache = folder / "cache"
    args = ["run", "dcgan", "--dataset", "digits", *TINY_RUN, "--cache-dir", str(cache)]
    args += ["--eval-every", "3", "--eval-samples", "100", "--metrics", "fid,is"]
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(folder)
            result = CliRunner().invoke(cli, [*args, "--tracking-uri", server.uri])
        assert result.exit_code == 0, result.output
        client = MlflowClient(tracking_uri=server.uri)
        [run] = client.search_runs([e.experiment_id for e in client.search_experiments()])
        yield Served(folder, server, run.info.run_id, cache)
    finally:
        server.stop()


@dataclass
class Finished:
    code: int
    seconds: float
    out: str
    err: str


def _run_all(folder: Path, commands: dict[str, list[str]]) -> dict[str, Finished]:
    """The ``ganbench`` commands, started together as real processes."""
    started = {name: (time.monotonic(), ganbench(*args, cwd=folder, name=name))
               for name, args in commands.items()}  # fmt: skip
    done = {}
    for name, (t0, proc) in started.items():
        code = finish(proc, timeout=300)
        done[name] = Finished(
            code,
            time.monotonic() - t0,
            (folder / f"{name}.out").read_text(),
            (folder / f"{name}.err").read_text(),
        )
    return done


@pytest.fixture(scope="module")
def offline(served):
    """``eval`` (120 samples: names the training never logged) and ``probe`` of the run's
    last checkpoint, both with the server stopped (the run's folder is here)."""
    served.down()
    common = ["--cache-dir", str(served.cache), "--tracking-wait", "3", "--no-progress"]
    return _run_all(
        served.folder,
        {
            "eval": ["eval", served.run_id, "--samples", "120", "--metrics", "fid,is", *common],
            "probe": [
                *("probe", served.run_id, "--dataset", "digits"),
                *("--labels-per-class", "5", "--draws", "2", *common),
            ],
        },
    )


def _one_error_line(done: Finished, served: Served, command: str) -> Path:
    """The command's stderr ends in its only ``Error:`` line, which names its outbox
    folder and the sync that delivers it; returns that folder."""
    assert "Traceback" not in done.err, done.err
    errors = [line for line in done.err.splitlines() if line.startswith("Error:")]
    assert errors == [done.err.strip().splitlines()[-1]], done.err
    [folder] = (served.cache / "outbox").glob(f"{served.run_id}-{command}-*")
    assert errors[0].endswith(f"Deliver them once it is back: ganbench sync {folder}")
    assert f"the MLflow store at {served.server.uri} did not answer within 3 s" in errors[0]
    assert pending_in(folder / "outbox") > 0
    info = json.loads((folder / "run.json").read_text())
    assert info["run_id"] == served.run_id and info["command"] == command
    assert info["tracking_uri"] == served.server.uri  # the store the run's folder names
    return folder


def test_eval_with_the_server_stopped_saves_its_scores_and_exits_1_in_one_line(served, offline):
    done = offline["eval"]
    assert done.code == 1 and done.seconds < BOUND, done.err
    folder = _one_error_line(done, served, "eval")
    printed = {
        line.split(" = ")[0]: float(line.split(" = ")[1])
        for line in done.out.splitlines()
        if " = " in line
    }
    assert set(printed) == {"digits-cnn/fid_120", "digits-cnn/is_120", "digits-cnn/is_120_std"}
    [saved] = (folder / "scoring").glob(f"eval-*-step-{STEP:09d}.json")
    record = json.loads(saved.read_text())
    assert record["step"] == STEP
    assert record["source"] == f"runs:/{served.run_id}/checkpoints/last.pt"
    assert record["scores"] == pytest.approx({f"eval/{k}": v for k, v in printed.items()})
    assert f"saved the scores and how they were measured in {saved}" in done.out


def test_probe_with_the_server_stopped_saves_its_result_and_exits_1_in_one_line(served, offline):
    done = offline["probe"]
    assert done.code == 1 and done.seconds < BOUND, done.err
    folder = _one_error_line(done, served, "probe")
    assert "    trained: accuracy" in done.out and "random_init: accuracy" in done.out
    [saved] = (folder / "probe").glob("*.json")
    record = json.loads(saved.read_text())
    assert 0.3 < record["metrics"]["probe.digits.5_per_class.accuracy"] <= 1
    assert record["metrics"]["probe.digits.5_per_class.labels_used"] == 50
    assert f"saved the result in {saved}" in done.out


def test_analyze_with_the_server_stopped_keeps_a_copy_of_its_files_until_delivered(
    served, offline, tmp_path
):
    served.down()
    out = tmp_path / "walk"
    args = ["analyze", served.run_id, "walk", "--rows", "1", "--out", str(out)]
    args += ["--cache-dir", str(served.cache), "--tracking-wait", "1", "--no-progress"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert errors == [result.output.strip().splitlines()[-1]]
    [folder] = (served.cache / "outbox").glob(f"{served.run_id}-analyze-*")
    assert errors[0].endswith(f"ganbench sync {folder}")
    written = sorted(p.name for p in out.iterdir())
    assert "result.json" in written and "walks.png" in written
    # the user's --out may go before the store is back: the journal uploads copies
    assert sorted(p.name for p in (folder / "analysis" / "walk").iterdir()) == written


def _export(
    served: Served, name: str, out: Path, cache: Path, *extra: str, process: bool = True
) -> Finished:
    """``zoo export`` of the run: a real process, or in this one (quicker: no imports)."""
    args = ["zoo", "export", served.run_id, "--name", name, "--out", str(out), *extra]
    args += ["--cache-dir", str(cache), "--no-progress"]
    if process:
        return _run_all(served.folder, {name: args})[name]
    t0 = time.monotonic()
    result = CliRunner().invoke(cli, args)
    return Finished(result.exit_code, time.monotonic() - t0, result.output, result.output)


def _entry_scores(out: Path) -> dict[str, dict]:
    [entry] = tomllib.loads((out / "index.toml").read_text())["generators"]
    return {m["name"]: m for m in entry["metrics"]}


def _without_scores(served: Served, where: Path) -> Path:
    """A cache whose copy of the run's folder has its checkpoints but no scores (as a
    resume on another machine leaves it): the scores are in MLflow only."""
    import shutil

    copy = where / "runs" / served.run_id
    shutil.copytree(served.run_dir, copy, ignore=shutil.ignore_patterns("scoring", "lock"))
    return where


def test_zoo_export_with_the_server_stopped_uses_the_runs_folder_or_writes_nothing(
    served, offline, tmp_path
):
    served.down()
    training = json.loads((served.run_dir / "scoring" / f"step-{STEP:09d}.json").read_text())

    # The run's folder is here: the entry gets the training's scores at step 6 from it,
    # and the eval's (still waiting in its outbox), said in a line.
    here = _export(served, "from-folder", tmp_path / "a", served.cache, process=False)
    assert here.code == 0 and here.seconds < BOUND, here.err
    assert "does not answer: the scores come from the run's folder" in here.err
    scores = _entry_scores(tmp_path / "a")
    assert {k: scores[k]["value"] for k in training["scores"]} == training["scores"]
    assert f"training step {STEP} of run {served.run_id}" in scores["digits-cnn/fid_100"]["how"]
    assert "digits-cnn/fid_120" in scores  # the eval's, under the name it measured
    assert (
        f"runs:/{served.run_id}/checkpoints/last.pt (step {STEP})"
        in (scores["digits-cnn/fid_120"]["how"])
    )

    # No folder of the run here, or one without its scores: one line, in seconds, and
    # nothing in the zoo folder (before: 8 minutes of retries, or an entry with no scores).
    for name, cache in [
        ("no-folder", tmp_path / "empty-cache"),
        ("no-scores", _without_scores(served, tmp_path / "copied-cache")),
    ]:
        out = tmp_path / name
        done = _export(served, name, out, cache, "--tracking-uri", served.server.uri)
        assert done.code == 1 and done.seconds < BOUND, done.err
        assert "Traceback" not in done.err
        [error] = [line for line in done.err.splitlines() if line.startswith("Error:")]
        assert error == done.err.strip().splitlines()[-1]
        assert served.server.uri in error
        assert not out.exists(), list(out.iterdir())


@pytest.fixture(scope="module")
def delivered(served, offline):
    """The server back, and ``ganbench sync FOLDER`` of the eval's, probe's, analyze's."""
    served.up()
    folders = {c: next((served.cache / "outbox").glob(f"{served.run_id}-{c}-*"))
               for c in ("eval", "probe", "analyze")}  # fmt: skip
    synced = _run_all(
        served.folder,
        {f"sync-{c}": ["sync", str(f), "--no-progress"] for c, f in folders.items()},
    )
    return folders, synced


def _values(folder: Path) -> dict[str, tuple[int, float]]:
    """(step, value) of every metric a command outbox journaled."""
    return {
        key: (op["step"], value)
        for op in read_ops(folder / "outbox")
        if op["op"] == "metrics"
        for key, value in op["values"].items()
    }


def _each_once(client: MlflowClient, run_id: str, values: dict[str, tuple[int, float]]) -> None:
    for key, (step, value) in values.items():
        history = client.get_metric_history(run_id, key)
        assert [(m.step, m.value) for m in history] == [(step, pytest.approx(value))], key


def test_sync_delivers_every_value_exactly_once(served, delivered, tmp_path):
    folders, synced = delivered
    for name, done in synced.items():
        assert done.code == 0, done.err
        assert "delivered" in done.out and "(now FINISHED)" in done.out, name
    client = served.client()
    rid = served.run_id
    evaluated, probed = _values(folders["eval"]), _values(folders["probe"])
    assert set(evaluated) == {"eval/digits-cnn/fid_120", "eval/digits-cnn/is_120",
                              "eval/digits-cnn/is_120_std"}  # fmt: skip
    # 15 numbers for each discriminator, and their paired comparison (its interval and
    # t test only where the draws' differences vary)
    prefix = "probe.digits.5_per_class"
    each = {
        k[len(prefix) + 1 :]
        for k in probed
        if not k.startswith((f"{prefix}.random_init.", f"{prefix}.paired."))
    }
    assert len(each) == 15 and "accuracy_spread" in each and "bn_layers_recalibrated" in each
    assert {k for k in probed if k.startswith(f"{prefix}.random_init.")} == {
        f"{prefix}.random_init.{k}" for k in each
    }
    paired = {k.rsplit(".", 1)[1] for k in probed if k.startswith(f"{prefix}.paired.")}
    assert {"draws", "difference", "wins", "losses", "ties", "sign_pvalue"} <= paired
    analysed = _values(folders["analyze"])
    assert set(analysed) == {"analysis.walk.largest_step_share"}
    for values in (evaluated, probed, analysed):
        _each_once(client, rid, values)
    walk = {a.path for a in client.list_artifacts(rid, "analysis/walk")}
    assert {"analysis/walk/result.json", "analysis/walk/walks.png"} <= walk
    assert logged_images(client, rid) >= {("analysis/walk/walks", STEP)}
    tags = client.get_run(rid).data.tags
    assert tags["eval/digits-cnn/fid_120.how"].startswith("digits-cnn, 120 generated")
    assert tags["probe.digits.5_per_class.how"].startswith("linear L2-SVM")
    scoring = {a.path for a in client.list_artifacts(rid, "scoring")}
    [mine] = [p for p in scoring if p.startswith("scoring/eval-")]
    assert (folders["eval"] / mine).is_file()  # the local copy stays
    # The training's own record of step 6 is as the training wrote it.
    got = client.download_artifacts(rid, f"scoring/step-{STEP:09d}.json", str(tmp_path))
    assert (
        Path(got).read_bytes()
        == (served.run_dir / "scoring" / f"step-{STEP:09d}.json").read_bytes()
    )
    assert [m.step for m in client.get_metric_history(rid, "digits-cnn/fid_100")] == [3, STEP]

    # Delivered again from the start (as after a crash before the offset was saved):
    # still one value per metric and step.
    (folders["eval"] / "outbox" / "delivered.json").write_text('{"offset": 0}')
    again = CliRunner().invoke(cli, ["sync", str(folders["eval"]), "--no-progress"])
    assert again.exit_code == 0, again.output
    _each_once(client, rid, evaluated)
    nothing = CliRunner().invoke(cli, ["sync", str(folders["probe"]), "--no-progress"])
    assert "nothing to deliver" in nothing.output


def test_zoo_export_completes_once_the_server_is_back(served, delivered, tmp_path):
    served.up()
    cache = _without_scores(served, tmp_path / "copied-cache")
    done = _export(served, "back", tmp_path / "back", cache, process=False)
    assert done.code == 0, done.err
    scores = _entry_scores(tmp_path / "back")
    training = json.loads((served.run_dir / "scoring" / f"step-{STEP:09d}.json").read_text())
    assert {k: scores[k]["value"] for k in training["scores"]} == training["scores"]
    # the eval's scores, delivered by the sync, are read from MLflow
    evaluated = _values(next((served.cache / "outbox").glob(f"{served.run_id}-eval-*")))
    assert scores["digits-cnn/fid_120"]["value"] == evaluated["eval/digits-cnn/fid_120"][1]


# The command outbox itself, into a SQLite store (no server, no training: seconds).


def test_a_delivered_outbox_keeps_the_results_or_goes(tmp_path):
    from ganbench.runs.target import Target
    from ganbench.tracking.outbox.command import CommandOutbox
    from ganbench.tracking.tracker import MlflowTracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run = MlflowTracker(uri, "commands", "r")
    run.finish("FINISHED")
    target = Target(run.run_id, uri)
    folders = []
    for keep in (True, False):
        outbox = CommandOutbox(target, "probe", tmp_path / "cache", keep=keep)
        result = outbox.path / "result.json"
        result.write_text("{}")
        outbox.tracker.log_metrics({"m": float(keep)}, 7)
        outbox.tracker.log_artifact(result, "probe")
        outbox.finish(30, "probed")
        folders.append(outbox.path)
    # two invocations in one second and one process: two folders, never one
    assert folders[0] != folders[1]
    assert (folders[0] / "result.json").is_file() and not folders[1].exists()
    client = MlflowClient(tracking_uri=uri)
    history = client.get_metric_history(run.run_id, "m")
    assert sorted((m.step, m.value) for m in history) == [(7, 0.0), (7, 1.0)]
    assert client.get_run(run.run_id).info.status == "FINISHED"  # a command never changes it


def test_records_the_store_refuses_are_one_line_and_kept(tmp_path):
    from ganbench.errors import TrackingError
    from ganbench.runs.target import Target
    from ganbench.tracking.outbox.command import CommandOutbox
    from ganbench.tracking.tracker import MlflowTracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowTracker(uri, "commands", "r").finish("FINISHED")  # a store, without this run
    outbox = CommandOutbox(Target("0" * 32, uri), "eval", tmp_path / "cache", keep=True)
    outbox.tracker.log_metrics({"eval/fid": 1.0}, 3)
    with pytest.raises(TrackingError, match=r"^scored, but MLflow refused 1 record\(s\)") as got:
        outbox.finish(30, "scored")
    assert str(got.value).endswith(f"{outbox.path / 'outbox' / 'rejected.jsonl'}")
    assert "\n" not in str(got.value)
    assert (outbox.path / "outbox" / "rejected.jsonl").is_file()


def test_provenance_names_and_which_scores_a_zoo_entry_lists():
    from ganbench.metrics.scoring import eval_provenance_name, parse_provenance_name
    from ganbench.zoo.scores import from_records

    assert parse_provenance_name("scoring/step-000000006.json") == (6, None)
    name = eval_provenance_name(6, "20261204T153012Z-4711-2")
    assert name == "eval-20261204T153012Z-4711-2-step-000000006.json"
    assert parse_provenance_name(name) == (6, "20261204T153012Z-4711-2")
    assert parse_provenance_name("eval.json") is None

    def record(scores):
        return {"scores": scores, "how": {k: {"extractor": "x", "seed": "0"} for k in scores}}

    older, newer = "eval-20261204T100000Z-1", "eval-20261204T110000Z-2"
    records = {
        f"{older}-step-000000006.json": record({"eval/fid_1k": 3.0}),
        f"{newer}-step-000000006.json": record({"eval/fid_1k": 2.0, "eval/fid_2k": 1.0}),
        "step-000000006.json": record({"fid_2k": 9.0}),
    }
    scores = {s.name: s for s in from_records(records, "RUN", 6)}
    # the training's value where both measured a name; else the newest evaluation's
    assert {n: s.value for n, s in scores.items()} == {"fid_2k": 9.0, "fid_1k": 2.0}
    assert "training step 6 of run RUN" in scores["fid_2k"].how


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="thread niceness is Linux's")
def test_a_commands_writer_runs_at_the_commands_priority_a_trainings_below_it(tmp_path):
    """A training's writer yields to the training (niceness 19); a command's writer is all
    the command waits for, so it keeps the command's priority (a loaded machine starved
    the niced one past the command's wait)."""
    from ganbench.rundir.folder import RunFolder
    from ganbench.runs.target import Target
    from ganbench.tracking.outbox.command import CommandOutbox
    from ganbench.tracking.outbox.tracker import OutboxTracker
    from ganbench.tracking.outbox.writer import WRITER_NICENESS
    from ganbench.tracking.tracker import MlflowTracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run = MlflowTracker(uri, "commands", "r")
    folder = RunFolder.create(tmp_path / "run", {"run_id": run.run_id, "tracking_uri": uri})
    training = OutboxTracker(run, folder, print)
    command = CommandOutbox(Target(run.run_id, uri), "probe", tmp_path / "cache", keep=True)

    def niceness(tracker) -> int:
        thread = tracker.writer._thread
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # set by the thread itself as it starts
            value = os.getpriority(os.PRIO_PROCESS, thread.native_id)
            if value != own or tracker is command.tracker:
                return value
            time.sleep(0.05)
        return value

    own = os.getpriority(os.PRIO_PROCESS, 0)
    assert niceness(training) == max(own, WRITER_NICENESS)
    assert niceness(command.tracker) == own
    training.finish("FINISHED")
    assert training.close(60) == 0
    command.finish(60, "probed")


def _gated_training(tmp_path, name):
    """A training's outbox whose niced writer thread stops inside its first delivery
    until ``gate`` is set; every delivery is recorded as (kind, thread niceness, replay)."""
    import threading

    from ganbench.rundir.folder import RunFolder
    from ganbench.tracking.outbox.tracker import OutboxTracker
    from ganbench.tracking.outbox.writer import WRITER_NICENESS
    from ganbench.tracking.tracker import MlflowTracker

    if os.getpriority(os.PRIO_PROCESS, 0) >= WRITER_NICENESS:
        pytest.skip("the test process itself runs at the writer's niceness")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run = MlflowTracker(uri, name, "r")
    folder = RunFolder.create(tmp_path / "run", {"run_id": run.run_id, "tracking_uri": uri})
    training = OutboxTracker(run, folder, print)
    delivery = training.writer.delivery
    deliver, gate, entered = delivery.deliver, threading.Event(), threading.Event()
    seen: list[tuple[str, int, bool]] = []

    def gated(ops, replay=False):
        nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        seen.append((ops[0]["op"], nice, replay))
        if nice == WRITER_NICENESS:
            entered.set()
            assert gate.wait(60)
        return deliver(ops, replay=replay)

    delivery.deliver = gated
    return training, run.run_id, uri, folder, gate, entered, seen


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="thread niceness is Linux's")
def test_a_closing_trainings_writer_takes_over_at_once_from_a_niced_thread_stuck_in_metrics(
    tmp_path,
):
    """Once the training ends, what its writer has left (a stopped run's KILLED status)
    goes at the process's priority, at once: the niced thread, stuck in a group on a
    machine busy with other work (here: held by a gate), made a stopped run outlive the
    stop's 10 s wait RUNNING. The group it was in is delivered again as a replay, and its
    own late call changes nothing."""
    from ganbench.tracking.outbox.writer import WRITER_NICENESS

    training, run_id, uri, folder, gate, entered, seen = _gated_training(tmp_path, "metrics")
    own = os.getpriority(os.PRIO_PROCESS, 0)
    stuck = training.writer._thread
    training.log_metrics({"loss": 0.5}, 1)
    assert entered.wait(60), "the writer never delivered the metrics"
    training.log_params({"lr": 0.1})
    training.finish("KILLED")
    assert training.close(30) == 0  # the gate is still shut: no waiting on the stuck thread
    assert seen == [
        ("metrics", WRITER_NICENESS, False),
        ("metrics", own, True),
        ("params", own, False),
        ("status", own, False),
    ]
    client = MlflowClient(tracking_uri=uri)
    assert client.get_run(run_id).info.status == "KILLED"
    gate.set()  # the stuck call lands late: one metric value still, nothing set aside
    stuck.join(30)
    assert not stuck.is_alive()
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "loss")] == [(1, 0.5)]
    assert client.get_run(run_id).data.params == {"lr": "0.1"}
    assert pending_in(folder.path / "outbox") == 0
    assert not (folder.path / "outbox" / "rejected.jsonl").exists()


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="thread niceness is Linux's")
def test_a_closing_trainings_writer_waits_for_a_niced_tags_group_whose_order_matters(tmp_path):
    """A tag group landing after a newer value of the same tag would undo it: that group
    is finished by the niced thread before the closing thread goes on."""
    import threading

    from ganbench.tracking.outbox.writer import WRITER_NICENESS

    training, run_id, uri, _, gate, entered, seen = _gated_training(tmp_path, "tags")
    own = os.getpriority(os.PRIO_PROCESS, 0)
    training.set_tags({"where": "old"})
    assert entered.wait(60), "the writer never delivered the tags"
    training.set_tags({"where": "new"})
    training.finish("KILLED")
    closing = threading.Thread(target=lambda: seen.append(("left", training.close(60), False)))
    closing.start()
    time.sleep(1.0)
    assert seen == [("tags", WRITER_NICENESS, False)]  # the closing thread waits
    gate.set()
    closing.join(90)
    assert seen == [
        ("tags", WRITER_NICENESS, False),
        ("tags", own, False),
        ("status", own, False),
        ("left", 0, False),
    ]
    run = MlflowClient(tracking_uri=uri).get_run(run_id)
    assert run.info.status == "KILLED" and run.data.tags["where"] == "new"
