"""A live run's heartbeat comes from a thread on a timer, so a long score during training
(or a resume preparing its data) no longer looks dead: heartbeat.json and the
``ganbench.heartbeat`` tag keep coming while the main thread is busy, with the last
completed step; the thread ends with the run. Tiny in-process runs, a real SQLite store;
the intervals are shortened, and the work is made slow by a sleep inside it."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from tinyruns import STEPS, invoke, stopped_run, train

from ganbench.metrics.session import Scorer
from ganbench.runfolder import RunFolder
from ganbench.training import heartbeat

SLOW = 1.5  # seconds of "work" while the heartbeat is watched


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("store")


@pytest.fixture(autouse=True)
def fast_beats(monkeypatch):
    monkeypatch.setattr(heartbeat, "HEARTBEAT_SECONDS", 0.1)
    monkeypatch.setattr(heartbeat, "HEARTBEAT_TAG_SECONDS", 0.25)


def watched(run_dir: Path, seen: list) -> None:
    """Sleep SLOW seconds; note when it started and the heartbeat file at its end."""
    start = time.time()
    time.sleep(SLOW)
    seen.append((start, RunFolder.open(run_dir).heartbeat()))


def heartbeat_tags(run_dir: Path) -> list[str]:
    lines = (run_dir / "outbox" / "journal.jsonl").read_bytes().splitlines()
    tags = [op["tags"] for op in map(json.loads, lines) if op["op"] == "tags"]
    return [t[heartbeat.TAG] for t in tags if heartbeat.TAG in t]


def no_heartbeat_thread() -> bool:
    return not any(t.name == "ganbench-heartbeat" for t in threading.enumerate())


def test_the_heartbeat_goes_on_during_a_long_score(tmp_path, store, monkeypatch):
    run_dir = tmp_path / "run"
    seen: list = []
    score = Scorer.score_shared

    def slow_score(self, *args, **kwargs):
        watched(run_dir, seen)
        return score(self, *args, **kwargs)

    monkeypatch.setattr(Scorer, "score_shared", slow_score)
    done = train(store, run_dir, "--eval-every", "6", "--eval-samples", "100")
    assert done.exit_code == 0, done.output
    assert len(seen) == 2  # steps 6 and 12
    for (start, beat), step in zip(seen, (6, STEPS), strict=True):
        assert beat.step == step  # the last completed step
        assert beat.time > start + SLOW - 0.5, (start, beat)  # written during the score
    during = [t for t in heartbeat_tags(run_dir) if " step 6 on " in t]
    assert len(during) >= 3, heartbeat_tags(run_dir)  # ~6 in 1.5 s of scoring
    assert f" step {STEPS} on " in heartbeat_tags(run_dir)[-1]  # a last beat at the end
    assert no_heartbeat_thread()


def test_the_heartbeat_goes_on_while_a_resume_prepares_its_data(tmp_path, store, monkeypatch):
    import ganbench.cli.runs as runs_cli

    _, run_dir = stopped_run(store, tmp_path)
    seen: list = []
    prepared = runs_cli._prepared

    def slow_prepare(*args, **kwargs):
        watched(run_dir, seen)
        return prepared(*args, **kwargs)

    monkeypatch.setattr(runs_cli, "_prepared", slow_prepare)
    resumed = invoke(tmp_path, "resume", str(run_dir), "--no-progress")
    assert resumed.exit_code == 0, resumed.output
    [(start, beat)] = seen
    assert beat.step == 10  # the checkpoint's step: the last completed one
    assert beat.time > start + SLOW - 0.5, (start, beat)
    assert no_heartbeat_thread()
