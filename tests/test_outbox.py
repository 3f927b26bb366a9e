"""The tracking journal and its writer, delivering into a real SQLite MLflow store."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient
from PIL import Image

from ganbench.rundir.folder import RunFolder
from ganbench.tracking.outbox.delivery import groups, logged_images
from ganbench.tracking.outbox.journal import Journal, pending_in
from ganbench.tracking.outbox.tracker import OutboxTracker
from ganbench.tracking.tracker import MlflowTracker


def test_journal_reads_complete_lines_and_cuts_a_partial_one_on_reopen(tmp_path):
    journal = Journal(tmp_path)
    for step in (1, 2, 3):
        journal.append({"op": "metrics", "step": step, "time": 0, "values": {"x": float("nan")}})
    first = journal.read(0, limit=2)
    assert [op["step"] for _, op in first] == [1, 2]
    rest = journal.read(first[-1][0])
    assert [op["step"] for _, op in rest] == [3]
    assert rest[0][1]["values"]["x"] != rest[0][1]["values"]["x"]  # NaN survives
    journal.close()
    with (tmp_path / "journal.jsonl").open("ab") as fh:  # a writer killed mid-line
        fh.write(b'{"op":"metrics","st')
    assert len(Journal(tmp_path).read(0)) == 3  # reading stops before it
    reopened = Journal(tmp_path)
    reopened.append({"op": "tags", "tags": {"a": "b"}})
    assert [op["op"] for op in reopened.ops()] == ["metrics"] * 3 + ["tags"]
    assert reopened.pending() == pending_in(tmp_path) == 4
    reopened.mark_delivered(rest[0][0])
    assert reopened.pending() == 1


def test_groups_batch_consecutive_records_within_mlflows_limits():
    def m(n):
        return {"op": "metrics", "values": {f"k{i}": 0.0 for i in range(n)}}

    ops = [m(600), m(300), m(200), {"op": "tags", "tags": {"a": "1"}}, {"op": "image"}, m(1)]
    batched = [[op["op"] for _, op in g] for g in groups(list(enumerate(ops)))]
    assert batched == [["metrics", "metrics"], ["metrics"], ["tags"], ["image"], ["metrics"]]


@pytest.fixture
def run(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow_run = MlflowTracker(uri, "outbox", "r")
    folder = RunFolder.create(tmp_path / "run", {"run_id": mlflow_run.run_id, "tracking_uri": uri})
    folder.lock()
    return mlflow_run, folder


def _wait(tracker: OutboxTracker) -> None:
    deadline = time.monotonic() + 60
    while tracker.journal.pending() and time.monotonic() < deadline:
        time.sleep(0.05)


def test_writer_delivers_everything_in_order_and_sets_refusals_aside(run, tmp_path):
    mlflow_run, folder = run
    said: list[str] = []
    tracker = OutboxTracker(mlflow_run, folder, said.append)
    tracker.log_params({"lr": 0.1})
    for step in range(1, 4):
        tracker.log_metrics({"loss": step / 10}, step)
    tracker.log_params({"lr": 0.2})  # MLflow refuses a changed param: set aside, said once
    tracker.log_image(Image.new("RGB", (8, 8)), "samples", 3)
    ckpt = folder.path / "step-3.pt"
    ckpt.write_bytes(b"weights")
    tracker.log_artifact(ckpt, "checkpoints", name="last.pt")
    tracker.set_tags({"t": "v"})
    tracker.finish("FINISHED")
    assert tracker.close(60) == 0
    client = MlflowClient(tracking_uri=mlflow_run.tracking_uri)
    got = client.get_run(mlflow_run.run_id)
    assert got.info.status == "FINISHED" and got.data.params == {"lr": "0.1"}
    assert got.data.tags["t"] == "v"
    history = client.get_metric_history(mlflow_run.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(1, 0.1), (2, 0.2), (3, 0.3)]
    assert logged_images(client, mlflow_run.run_id) == {("samples", 3)}
    last = client.download_artifacts(mlflow_run.run_id, "checkpoints/last.pt", str(tmp_path))
    assert Path(last).read_bytes() == b"weights"
    [refused] = [json.loads(x) for x in (folder.path / "outbox/rejected.jsonl").open()]
    assert refused["op"]["params"] == {"lr": "0.2"}
    assert [s for s in said if "refused" in s] == [said[0]] and "Changing param" in said[0]
    assert list((folder.path / "outbox/files").iterdir()) == []
    # Relative to the run folder: a moved folder still finds it.
    [upload] = [op for op in tracker.journal.ops() if op["op"] == "artifact"]
    assert upload["path"] == "step-3.pt"


def test_a_replayed_journal_logs_nothing_twice(run):
    """Records delivered but not yet marked (the process died in between) are sent again
    by the next process: metrics and images must not double."""
    mlflow_run, folder = run
    tracker = OutboxTracker(mlflow_run, folder, print)
    tracker.log_metrics({"loss": 1.0}, 1)
    tracker.log_image(Image.new("RGB", (8, 8)), "samples", 1)
    image_file = next((folder.path / "outbox/files").iterdir()).read_bytes()
    _wait(tracker)
    assert tracker.close(30) == 0
    tracker.journal.mark_delivered(0)  # as if the offset had not been saved
    (folder.path / "outbox/files" / "000000002-0.png").write_bytes(image_file)
    lines = (folder.path / "outbox/journal.jsonl").read_text().splitlines()
    image_op = json.loads(lines[1])
    image_op["file"] = "files/000000002-0.png"
    lines[1] = json.dumps(image_op)
    (folder.path / "outbox/journal.jsonl").write_text("\n".join(lines) + "\n")
    again = OutboxTracker(mlflow_run, folder, print)
    assert again.close(30) == 0
    client = MlflowClient(tracking_uri=mlflow_run.tracking_uri)
    assert len(client.get_metric_history(mlflow_run.run_id, "loss")) == 1
    pngs = [
        a for a in client.list_artifacts(mlflow_run.run_id, "images") if a.path.endswith(".png")
    ]
    assert len(pngs) == 1


def test_skipped_pairs_are_not_logged(run):
    mlflow_run, folder = run
    tracker = OutboxTracker(mlflow_run, folder, print, skip={("loss", 2), ("samples", 2)})
    for step in (1, 2, 3):
        tracker.log_metrics({"loss": float(step), "other": 0.0}, step)
        tracker.log_image(Image.new("RGB", (4, 4)), "samples", step)
    assert tracker.close(30) == 0
    client = MlflowClient(tracking_uri=mlflow_run.tracking_uri)
    assert [m.step for m in client.get_metric_history(mlflow_run.run_id, "loss")] == [1, 3]
    assert len(client.get_metric_history(mlflow_run.run_id, "other")) == 3
    assert logged_images(client, mlflow_run.run_id) == {("samples", 1), ("samples", 3)}
