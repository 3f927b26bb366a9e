"""The tracking outbox when something is wrong: a record MLflow refuses, a file that is
gone or unreadable, a damaged journal line, a writer that cannot go on, a moved run
folder, and a journal that would grow for ever. Real SQLite MLflow stores, real
``ganbench`` processes."""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import urllib3
from conftest import TINY_RUN
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from PIL import Image, UnidentifiedImageError

from ganbench.rundir.folder import RunFolder
from ganbench.tracking.outbox import problems, writer
from ganbench.tracking.outbox.delivery import Delivery
from ganbench.tracking.outbox.journal import Journal, pending_in, read_ops
from ganbench.tracking.outbox.tracker import OutboxTracker
from ganbench.tracking.store import is_transient
from ganbench.tracking.tracker import MlflowTracker

GANBENCH = str(Path(sys.executable).with_name("ganbench"))


@pytest.fixture
def run(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow_run = MlflowTracker(uri, "outbox", "r")
    folder = RunFolder.create(tmp_path / "run", {"run_id": mlflow_run.run_id, "tracking_uri": uri})
    folder.lock()
    return mlflow_run, folder


def _backlog(folder: RunFolder, *ops: dict) -> None:
    """Records journaled while no writer ran (a process that died, a store that was away):
    the next writer finds them all at once and merges them."""
    journal = Journal(folder.path / "outbox")
    for op in ops:
        journal.append(op)
    journal.close()


def _rejected(folder: RunFolder) -> list[dict]:
    path = folder.path / "outbox" / "rejected.jsonl"
    return [json.loads(line) for line in path.open()] if path.exists() else []


def _client(mlflow_run: MlflowTracker) -> MlflowClient:
    return MlflowClient(tracking_uri=mlflow_run.tracking_uri)


def _sync(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``ganbench sync ARGS`` as users run it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return subprocess.run(
        [GANBENCH, "sync", *args, "--no-progress"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


# ---- 1. only what MLflow refuses is set aside ---------------------------------------------
def test_a_refused_param_in_a_merged_batch_sets_aside_that_param_alone(run):
    mlflow_run, folder = run
    first = OutboxTracker(mlflow_run, folder, print)
    first.log_params({"lr": 0.1})
    assert first.close(60) == 0
    _backlog(
        folder,
        {"op": "params", "params": {"a": "1"}},
        {"op": "params", "params": {"b": "2", "lr": "0.2", "c": "3"}},  # lr changes: refused
        {"op": "params", "params": {"d": "4"}},
    )
    said: list[str] = []
    again = OutboxTracker(mlflow_run, folder, said.append)
    assert again.close(60) == 0
    params = _client(mlflow_run).get_run(mlflow_run.run_id).data.params
    assert params == {"lr": "0.1", "a": "1", "b": "2", "c": "3", "d": "4"}
    [refused] = _rejected(folder)
    assert refused["op"]["params"] == {"lr": "0.2"}
    assert "Changing param values is not allowed" in refused["reason"]
    assert refused["line"] == 3  # the journal line it came from (line 1: lr=0.1)
    assert again.writer.rejected_ops == 1
    assert [s for s in said if "refused" in s] == [said[0]] and "param lr=0.2" in said[0]


def test_a_refused_metric_key_sets_aside_that_key_at_that_step_alone(run):
    mlflow_run, folder = run
    _backlog(
        folder,
        {"op": "metrics", "step": 1, "time": 1, "values": {"loss": 1.0, "bad?": 5.0}},
        {"op": "metrics", "step": 2, "time": 2, "values": {"loss": 2.0, "ok": 1.0}},
        {"op": "params", "params": {"p": "1", "q": "1"}},
        {"op": "params", "params": {"p": "2"}},  # the same key, another value: not merged
    )
    tracker = OutboxTracker(mlflow_run, folder, print)
    assert tracker.close(60) == 0
    client = _client(mlflow_run)
    loss = client.get_metric_history(mlflow_run.run_id, "loss")
    assert [(m.step, m.value) for m in loss] == [(1, 1.0), (2, 2.0)]
    assert [m.step for m in client.get_metric_history(mlflow_run.run_id, "ok")] == [2]
    assert client.get_run(mlflow_run.run_id).data.params == {"p": "1", "q": "1"}
    refused = _rejected(folder)
    assert [r["op"] for r in refused] == [
        {"op": "metrics", "step": 1, "time": 1, "values": {"bad?": 5.0}},
        {"op": "params", "params": {"p": "2"}},
    ]
    assert [r["line"] for r in refused] == [1, 4]


# ---- 3. transient means the store is away, nothing else ---------------------------------
def _code(name: str) -> int:
    from mlflow.protos.databricks_pb2 import ErrorCode

    return ErrorCode.Value(name)


def _http_error(status: int) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    return requests.HTTPError(f"{status}", response=response)


@pytest.mark.parametrize(
    "exc",
    [
        requests.ConnectionError("refused"),
        requests.ReadTimeout("slow"),
        requests.exceptions.ChunkedEncodingError("broken"),
        urllib3.exceptions.NewConnectionError(None, "refused"),
        urllib3.exceptions.ProtocolError("reset"),
        ConnectionRefusedError(errno.ECONNREFUSED, "refused"),
        TimeoutError("timed out"),
        socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"),
        OSError(errno.EHOSTUNREACH, "no route to host"),
        _http_error(502),
        _http_error(503),
        _http_error(429),
        MlflowException("busy", error_code=_code("INTERNAL_ERROR")),  # the writer's strikes
        MlflowException("away", error_code=_code("TEMPORARILY_UNAVAILABLE")),
        MlflowException("slow down", error_code=_code("REQUEST_LIMIT_EXCEEDED")),
        MlflowException("retry", error_code=_code("ABORTED")),
        sqlite3.OperationalError("database is locked"),
    ],
    ids=lambda e: f"{type(e).__name__}-{getattr(e, 'error_code', '')}",
)
def test_the_store_away_or_busy_is_transient(exc):
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        PermissionError(errno.EACCES, "Permission denied"),
        FileNotFoundError(errno.ENOENT, "No such file"),
        IsADirectoryError(errno.EISDIR, "Is a directory"),
        OSError(errno.ENOSPC, "No space left on device"),
        OSError(errno.EROFS, "Read-only file system"),
        ValueError("bad image"),
        UnidentifiedImageError("cannot identify image file"),
        _http_error(404),
        _http_error(501),
        sqlite3.OperationalError("no such table: runs"),
        MlflowException("Changing param values", error_code=_code("INVALID_PARAMETER_VALUE")),
    ],
    ids=lambda e: f"{type(e).__name__}-{getattr(e, 'errno', '') or ''}",
)
def test_local_faults_and_refusals_are_not_transient(exc):
    assert not is_transient(exc)


# ---- a file that cannot be read: set aside, delivery goes on ------------------------------
@pytest.mark.parametrize("how", ["chmod", "directory", "permission-error"])
def test_an_unreadable_artifact_is_set_aside_and_delivery_goes_on(run, how, monkeypatch):
    mlflow_run, folder = run
    bad = folder.path / "bad.pt"
    if how == "chmod":
        if os.geteuid() == 0:
            pytest.skip("root reads a file whatever its mode")
        bad.write_bytes(b"x")
        bad.chmod(0)
    elif how == "directory":
        bad.mkdir()  # a directory where a file is expected
        (bad / "inside").write_text("x")
    else:  # the upload itself fails with a PermissionError (works as root too)
        bad.write_bytes(b"x")
        real = MlflowClient.log_artifact

        def refuse(self, run_id, local_path, artifact_path=None):
            if Path(local_path).name == "bad.pt":
                raise PermissionError(errno.EACCES, "Permission denied", str(local_path))
            return real(self, run_id, local_path, artifact_path)

        monkeypatch.setattr(MlflowClient, "log_artifact", refuse)
    good = folder.path / "good.pt"
    good.write_bytes(b"weights")
    tracker = OutboxTracker(mlflow_run, folder, print)
    tracker.log_metrics({"loss": 1.0}, 1)
    tracker.log_artifact(bad)
    tracker.log_metrics({"loss": 2.0}, 2)
    tracker.log_artifact(good, "checkpoints", name="last.pt")
    tracker.finish("FINISHED")
    start = time.monotonic()
    assert tracker.close(60) == 0
    assert time.monotonic() - start < 30  # not retried as an outage
    client = _client(mlflow_run)
    got = client.get_run(mlflow_run.run_id)
    assert got.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(mlflow_run.run_id, "loss")] == [1, 2]
    assert {a.path for a in client.list_artifacts(mlflow_run.run_id)} == {"checkpoints"}
    [refused] = _rejected(folder)
    assert refused["op"]["op"] == "artifact" and refused["op"]["path"] == "bad.pt"
    kind = {"chmod": "PermissionError", "directory": "Error", "permission-error": "Permission"}
    assert kind[how] in refused["reason"], refused["reason"]
    assert problems.state(folder.path / "outbox") == "1 rejected"


# ---- 2. artifacts of a moved folder; a missing one is said ------------------------------
def _tiny_run_left_undelivered(ganbench_run_cli, tmp_path, monkeypatch) -> tuple[Path, str, str]:
    """A tiny digits run whose store was away for the whole run (the one injected fault:
    every delivery fails as a refused connection): (run folder, tracking URI, run ID)."""

    def away(self, ops, replay=False):
        raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_dir = tmp_path / "old" / "run"
    args = [a if a != "checkpoint_every=4" else "checkpoint_every=2" for a in TINY_RUN]
    with monkeypatch.context() as patch:
        patch.setattr(Delivery, "deliver", away)
        result = ganbench_run_cli(
            "run", "dcgan", "--dataset", "digits", *args, "--tracking-uri", uri,
            "--run-dir", str(run_dir), "--tracking-wait", "0", "--cache-dir",
            str(tmp_path / "cache"), "--set", "eval_every=0",
        )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "ganbench sync" in result.output
    assert pending_in(run_dir / "outbox") > 10
    # Checkpoints at steps 2, 4, 6: step-2.pt was rotated away, its upload is journaled.
    names = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert names == ["step-000000004.pt", "step-000000006.pt"]
    return run_dir, uri, RunFolder.open(run_dir).run_id


def test_a_moved_run_folder_delivers_every_artifact_and_a_missing_one_is_named(
    ganbench_run_cli, tmp_path, monkeypatch
):
    run_dir, uri, run_id = _tiny_run_left_undelivered(ganbench_run_cli, tmp_path, monkeypatch)
    moved = tmp_path / "elsewhere" / "moved"
    moved.parent.mkdir()
    shutil.move(run_dir, moved)
    spare = tmp_path / "spare"  # the same undelivered folder, for the second sync
    shutil.copytree(moved, spare)

    done = _sync(str(moved), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "(now FINISHED)" in done.stdout
    client = MlflowClient(tracking_uri=uri)
    names = {a.path for a in client.list_artifacts(run_id)}
    assert {"generator.pt", "samples_final.png", "loss_curves.png", "checkpoints"} <= names
    assert {a.path for a in client.list_artifacts(run_id, "checkpoints")} == {"checkpoints/last.pt"}
    assert not (moved / "outbox" / "rejected.jsonl").exists()  # step-2.pt: skipped, silently

    (spare / "generator.pt").unlink()
    missing = ganbench_run_cli("sync", str(spare), "--no-progress")
    assert missing.exit_code == 1
    error = missing.output.strip().splitlines()[-1]
    assert error.startswith("Error: ") and "artifact generator.pt" in error
    assert f"missing file {spare / 'generator.pt'}" in error
    assert str(spare / "outbox" / "rejected.jsonl") in error
    [refused] = [json.loads(line) for line in (spare / "outbox" / "rejected.jsonl").open()]
    assert refused["reason"] == f"missing file {spare / 'generator.pt'}"


def test_an_old_journal_with_absolute_paths_delivers_from_the_moved_folder(run, tmp_path):
    """Journals written before paths were relative hold absolute ones."""
    mlflow_run, folder = run
    old_root = Path("/gone/runs") / mlflow_run.run_id
    (folder.path / "checkpoints").mkdir()
    (folder.path / "checkpoints" / "step-000000004.pt").write_bytes(b"four")
    (folder.path / "generator.pt").write_bytes(b"gen")
    _backlog(
        folder,
        {"op": "artifact", "path": f"{old_root}/checkpoints/step-000000002.pt",
         "dir": "checkpoints", "name": "last.pt"},  # rotated away: skipped silently
        {"op": "artifact", "path": f"{old_root}/checkpoints/step-000000004.pt",
         "dir": "checkpoints", "name": "last.pt"},
        {"op": "artifact", "path": f"{old_root}/generator.pt", "dir": None,
         "name": "generator.pt"},
        {"op": "artifact", "path": f"{old_root}/checkpoints/step-000000005.pt",
         "dir": "checkpoints", "name": "other.pt"},  # missing, and nothing newer: said
    )  # fmt: skip
    tracker = OutboxTracker(mlflow_run, folder, print)
    assert tracker.close(60) == 0
    client = _client(mlflow_run)
    last = client.download_artifacts(mlflow_run.run_id, "checkpoints/last.pt", str(tmp_path))
    assert Path(last).read_bytes() == b"four"
    gen = client.download_artifacts(mlflow_run.run_id, "generator.pt", str(tmp_path))
    assert Path(gen).read_bytes() == b"gen"
    [refused] = _rejected(folder)
    assert refused["reason"].startswith("missing file /gone/runs/")
    assert refused["op"]["name"] == "other.pt" and refused["line"] == 4


# ---- 5. a damaged line in the middle ------------------------------------------------------
def test_sync_reads_past_a_torn_middle_line_and_names_it(run, tmp_path, ganbench_run_cli):
    mlflow_run, folder = run
    _backlog(
        folder,
        *({"op": "metrics", "step": s, "time": s, "values": {"loss": float(s)}} for s in (1, 2)),
    )
    journal = folder.path / "outbox" / "journal.jsonl"
    with journal.open("ab") as fh:
        fh.write(b'{"op":"metrics","step":3,"ti\n')  # torn: the rest never reached the disk
        fh.write(b'\0\0\0\0{"op":"metrics","step":4,"time":4,"values":{"loss":4.0}}\n')
    _backlog(folder, {"op": "metrics", "step": 5, "time": 5, "values": {"loss": 5.0}})
    _backlog(folder, {"op": "status", "status": "FINISHED", "time": 6})
    assert [op["step"] for op in read_ops(folder.path / "outbox", b"metrics")] == [1, 2, 4, 5]
    folder.unlock()
    done = _sync(str(folder.path), cwd=tmp_path)
    assert done.returncode == 1
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith("Error: ") and f"{journal} line 3 is damaged" in error, error
    assert "(now FINISHED)" in error
    history = _client(mlflow_run).get_metric_history(mlflow_run.run_id, "loss")
    assert [m.step for m in history] == [1, 2, 4, 5]
    [refused] = _rejected(folder)
    assert refused["line"] == 3 and refused["op"]["raw"] == '{"op":"metrics","step":3,"ti'
    assert pending_in(folder.path / "outbox") == 0
    again = ganbench_run_cli("sync", str(folder.path))
    assert again.exit_code == 0 and "nothing to deliver" in again.output
    assert "1 set aside earlier" in again.output


# ---- 4. the writer thread survives, or says why it stopped --------------------------------
def test_a_writer_that_cannot_go_on_leaves_a_marker_that_runs_and_sync_show(
    run, tmp_path, monkeypatch, ganbench_run_cli
):
    mlflow_run, folder = run
    monkeypatch.setattr(writer, "MAX_FAULTS", 2)
    cursor = folder.path / "outbox" / "delivered.json"
    cursor.parent.mkdir(parents=True, exist_ok=True)
    cursor.mkdir()  # where the delivered offset must be saved: the folder is broken
    said: list[str] = []
    tracker = OutboxTracker(mlflow_run, folder, said.append)
    tracker.set_tags({"ganbench.run_dir": str(folder.path)})
    tracker.log_metrics({"loss": 1.0}, 1)
    deadline = time.monotonic() + 30
    while tracker.writer.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not tracker.writer.running
    assert tracker.writer.failure and "IsADirectoryError" in tracker.writer.failure
    marker = json.loads((folder.path / "outbox" / "writer-failed.json").read_text())
    assert "IsADirectoryError" in marker["reason"] and marker["line"] == 3
    assert [s for s in said if "the writer stopped" in s], said
    assert tracker.close(1) == 2
    folder.unlock()

    listed = ganbench_run_cli(
        "runs", "--experiment", "outbox", "--tracking-uri", mlflow_run.tracking_uri
    )
    assert listed.exit_code == 0, listed.output
    header, row = listed.output.splitlines()[:2]
    assert "TRACKING" in header and "2 wait, writer stopped" in row

    failed = ganbench_run_cli("sync", str(folder.path), "--no-progress")
    assert failed.exit_code == 1
    assert "the tracking writer stopped (IsADirectoryError" in failed.output
    assert "writer-failed.json" in failed.output.strip().splitlines()[-1]

    cursor.rmdir()  # the cause fixed
    fixed = ganbench_run_cli("sync", str(folder.path), "--no-progress")
    assert fixed.exit_code == 0, fixed.output
    assert "delivered 2 records" in fixed.output
    assert not (folder.path / "outbox" / "writer-failed.json").exists()
    assert problems.state(folder.path / "outbox") == "-"


def test_an_undecodable_line_does_not_end_the_writer(run):
    mlflow_run, folder = run
    _backlog(folder, {"op": "metrics", "step": 1, "time": 1, "values": {"loss": 1.0}})
    with (folder.path / "outbox" / "journal.jsonl").open("ab") as fh:
        fh.write(b"[1, 2]\n")  # JSON, but not a record
        fh.write(b'{"op":"no-such-kind"}\n')
        fh.write(b'{"op":"metrics","step":9}\n')  # no values
        fh.write(b'{"op":"artifact","name":"x.pt"}\n')  # no path
        fh.write(b'{"op":"image","key":"k"}\n')  # no file, no step
    _backlog(folder, {"op": "metrics", "step": 2, "time": 2, "values": {"loss": 2.0}})
    tracker = OutboxTracker(mlflow_run, folder, print)
    tracker.log_metrics({"loss": 3.0}, 3)
    assert tracker.close(60) == 0
    assert tracker.writer.running is False and tracker.writer.failure is None
    history = _client(mlflow_run).get_metric_history(mlflow_run.run_id, "loss")
    assert [m.step for m in history] == [1, 2, 3]
    assert [(r["line"], r["op"]["op"]) for r in _rejected(folder)] == [
        (2, "damaged"),
        (3, "no-such-kind"),
        (4, "damaged"),
        (5, "artifact"),
        (6, "image"),
    ]


# ---- `ganbench sync` with no folder -------------------------------------------------------
def test_sync_without_a_folder_delivers_every_waiting_folder_under_the_cache(
    tmp_path, ganbench_run_cli
):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cache = tmp_path / "cache"
    ids = []
    for where in ("runs", "outbox"):
        mlflow_run = MlflowTracker(uri, "outbox", where)
        path = cache / where / f"{mlflow_run.run_id}-x"
        folder = RunFolder.create(path, {"run_id": mlflow_run.run_id, "tracking_uri": uri})
        _backlog(folder, {"op": "metrics", "step": 1, "time": 1, "values": {"m": 1.0}})
        ids.append(mlflow_run.run_id)
    RunFolder.create(cache / "runs" / "done", {"run_id": ids[0], "tracking_uri": uri})
    result = ganbench_run_cli("sync", "--cache-dir", str(cache), "--no-progress")
    assert result.exit_code == 0, result.output
    assert f"synced 2 folders under {cache}: 2 delivered in full" in result.output
    client = MlflowClient(tracking_uri=uri)
    for run_id in ids:
        assert [m.value for m in client.get_metric_history(run_id, "m")] == [1.0]
    again = ganbench_run_cli("sync", "--cache-dir", str(cache), "--no-progress")
    assert again.exit_code == 0 and "nothing to deliver" in again.output


# ---- 6. compaction ------------------------------------------------------------------------
COMPACT_BYTES = 2048


def _journal_intervals(mlflow_run, folder: RunFolder, n: int, compact_bytes: int):
    """``n`` log intervals of a training run (5 metrics each), a checkpoint every 10 with
    the flush the runner does, its upload and its tags; then a sample grid, FINISHED."""
    tracker = OutboxTracker(mlflow_run, folder, print, compact_bytes=compact_bytes)
    tracker.set_status("RUNNING")
    tracker.log_params({"lr": 0.0002, "steps": n * 10})
    tracker.set_tags({"ganbench.run_dir": str(folder.path)})
    values = {"loss_d": 0.5, "loss_g": 2.0, "d_real": 0.7, "d_fake": 0.3, "images_per_sec": 1.0}
    folder.checkpoint_dir.mkdir(exist_ok=True)
    for interval in range(1, n + 1):
        step = interval * 10
        tracker.log_metrics(values, step)
        if interval % 10 == 0:
            # Minutes apart in a real run: the writer has caught up when a checkpoint comes.
            deadline = time.monotonic() + 60
            while tracker.journal.pending() and time.monotonic() < deadline:
                time.sleep(0.01)
            tracker.flush()
            path = folder.write_checkpoint({"step": step}, step)
            folder.beat(step)
            tracker.log_artifact(path, "checkpoints", name="last.pt")
            tracker.set_tags({"checkpoint.last_step": str(step), "ganbench.heartbeat": str(step)})
    tracker.log_image(Image.new("RGB", (4, 4)), "samples", n * 10)
    tracker.finish("FINISHED")
    tracker.flush()
    assert tracker.close(120) == 0
    return tracker


def _outlook(uri: str, folder: RunFolder, run_id: str):
    """What resume and `ganbench runs` read of a run: its journaled status, the pairs a
    resume from step 0 skips, the last step of each metric, and its `runs` row."""
    from ganbench.runs.resume import already_logged, journaled_status
    from ganbench.runs.status import describe

    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    journal = Journal(folder.path / "outbox")
    skip = already_logged(journal, client, run, 0)
    journal.close()
    last = {}
    for op in read_ops(folder.path / "outbox", b'"metrics"'):
        last.update(dict.fromkeys(op["values"], op["step"]))
    row = describe(run, folder.path / "no-cache")
    shown = (row.status, row.step, row.process, row.resume, row.tracking)
    return journaled_status(folder), skip, last, shown


@pytest.mark.parametrize("n", [50, 500])
def test_compaction_bounds_the_journal_and_keeps_what_resume_and_runs_read(
    tmp_path, ganbench_run_cli, n
):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    outlooks, ids = [], []
    # Compacted; and for the shorter one, the same never compacted, to compare with.
    for compact in (COMPACT_BYTES, 1 << 40) if n == 50 else (COMPACT_BYTES,):
        mlflow_run = MlflowTracker(uri, "outbox", str(compact))
        path = tmp_path / f"run-{compact}"
        folder = RunFolder.create(path, {"run_id": mlflow_run.run_id, "tracking_uri": uri})
        folder.lock()
        tracker = _journal_intervals(mlflow_run, folder, n, compact)
        folder.unlock()
        outlooks.append(_outlook(uri, folder, mlflow_run.run_id))
        ids.append(mlflow_run.run_id)
        if compact == COMPACT_BYTES:
            size = (path / "outbox" / "journal.jsonl").stat().st_size
            journaled = size + tracker.journal.header.folded_bytes
            compactions = tracker.writer.compactions
    print(f"n={n}: journal {size} bytes after {compactions} compactions, of {journaled}")
    # Bounded by the threshold plus what one checkpoint period (10 intervals) journals,
    # whatever n; what was journaled grows with n.
    assert size <= COMPACT_BYTES + 2048
    assert compactions >= (n * 130) // COMPACT_BYTES // 2
    assert journaled > n * 130
    status, skip, last, shown = outlooks[0]
    assert status == "FINISHED"
    keys = ("loss_d", "loss_g", "d_real", "d_fake", "images_per_sec")
    assert skip == {(k, s * 10) for k in keys for s in range(1, n + 1)} | {("samples", n * 10)}
    assert last == dict.fromkeys(keys, n * 10)
    assert shown == ("FINISHED", n * 10, "-", "-", "-")
    assert all(outlook == outlooks[0] for outlook in outlooks)
    listed = ganbench_run_cli("runs", "--experiment", "outbox", "--tracking-uri", uri)
    rows = [line.split() for line in listed.output.splitlines()[1:]]
    assert sorted((r[0], r[2], r[3]) for r in rows) == sorted(
        (run_id, "FINISHED", str(n * 10)) for run_id in ids
    )


def test_a_compaction_cut_short_before_the_new_offset_loses_and_repeats_nothing(tmp_path):
    journal = Journal(tmp_path, compact_bytes=0)
    for step in range(1, 6):
        journal.append({"op": "metrics", "step": step, "time": 0, "values": {"x": 1.0}})
    journal.append({"op": "status", "status": "KILLED", "time": 0})
    delivered = journal.read(0, limit=4)[-1][0]  # steps 1-4 delivered
    journal.mark_delivered(delivered)
    start = journal.compact(delivered)
    # The process dies here: delivered.json still holds the old file's offset.
    assert json.loads((tmp_path / "delivered.json").read_text())["epoch"] == 0
    assert pending_in(tmp_path) == 2 and journal.delivered() == start
    assert [op["step"] for op in journal.ops() if op["op"] == "metrics"] == [4, 5]
    assert [op["status"] for op in read_ops(tmp_path, b"status")] == ["KILLED"]
    journal.append({"op": "tags", "tags": {"a": "b"}})
    journal.close()
    reopened = Journal(tmp_path)
    assert reopened.pending() == 3
    assert [op["op"] for _, op in reopened.read(reopened.delivered())] == [
        "metrics",
        "status",
        "tags",
    ]
    assert int(reopened.new_file(".png").name[:9]) > 7  # names are never reused


def test_compaction_while_training_appends_loses_and_repeats_nothing(run):
    """The writer rewrites the journal while the training thread keeps appending."""
    mlflow_run, folder = run
    tracker = OutboxTracker(mlflow_run, folder, print, compact_bytes=1024)
    for step in range(1, 1201):
        tracker.log_metrics({"m": float(step)}, step)
        if step % 20 == 0:
            tracker.flush()
        time.sleep(0.001)
    tracker.finish("FINISHED")
    assert tracker.close(120) == 0
    assert tracker.writer.compactions >= 3
    history = _client(mlflow_run).get_metric_history(mlflow_run.run_id, "m")
    assert sorted(m.step for m in history) == list(range(1, 1201))  # each once
    steps = [op["step"] for op in read_ops(folder.path / "outbox", b'"metrics"')]
    assert steps[-1] == 1200 and steps == sorted(set(steps))
