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
from ganbench.rundir import heartbeat
from ganbench.rundir.folder import RunFolder

SLOW = 2.0  # seconds of "work" while the heartbeat is watched
#: Beats that must be written during that work (~20 at 0.1 s; a loaded CI machine can
#: starve the thread for a while, so the test asks for a few, not for one at the end).
BEATS_DURING = 3


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("store")


@pytest.fixture(autouse=True)
def fast_beats(monkeypatch):
    monkeypatch.setattr(heartbeat, "HEARTBEAT_SECONDS", 0.1)
    monkeypatch.setattr(heartbeat, "HEARTBEAT_TAG_SECONDS", 0.25)


def watched(run_dir: Path, seen: list) -> None:
    """Busy the main thread SLOW seconds, reading the heartbeat file as it goes; note
    the beats written after the work began and the last one read."""
    folder = RunFolder.open(run_dir)
    start = time.time()
    times: set[float] = set()
    beat = folder.heartbeat()
    while time.time() < start + SLOW:
        time.sleep(0.05)
        beat = folder.heartbeat()
        if beat is not None and beat.time > start:
            times.add(beat.time)
    seen.append((sorted(times), beat))


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
    for (during, beat), step in zip(seen, (6, STEPS), strict=True):
        assert beat.step == step  # the last completed step
        assert len(during) >= BEATS_DURING, during  # written while the score ran
    during = [t for t in heartbeat_tags(run_dir) if " step 6 on " in t]
    assert len(during) >= 3, heartbeat_tags(run_dir)  # ~8 in 2 s of scoring
    assert f" step {STEPS} on " in heartbeat_tags(run_dir)[-1]  # a last beat at the end
    assert no_heartbeat_thread()


def test_the_heartbeat_goes_on_while_a_resume_prepares_its_data(tmp_path, store, monkeypatch):
    import ganbench.runs.resuming as resuming

    _, run_dir = stopped_run(store, tmp_path)
    seen: list = []
    prepared = resuming.prepared

    def slow_prepare(*args, **kwargs):
        watched(run_dir, seen)
        return prepared(*args, **kwargs)

    monkeypatch.setattr(resuming, "prepared", slow_prepare)
    resumed = invoke(tmp_path, "resume", str(run_dir), "--no-progress")
    assert resumed.exit_code == 0, resumed.output
    [(during, beat)] = seen
    assert beat.step == 10  # the checkpoint's step: the last completed one
    assert len(during) >= BEATS_DURING, during
    assert no_heartbeat_thread()
