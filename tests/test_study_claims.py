"""Claiming a study's waiting trials from several processes at once: each trial goes to
exactly one process, on ganbench's SQLite storage (immediate transactions) as on a server
database. Optuna's own SQLite claim can hand one trial to two processes
(optuna/optuna#4002): without ganbench's transactions this test fails (11-21% of the
claims were doubled at 4 processes in benchmarks/team_storage.py)."""

from __future__ import annotations

import multiprocessing
from collections import Counter
from pathlib import Path

import optuna
from optuna.trial import TrialState

TRIALS, PROCESSES = 80, 4


def _claim(url: str, share: int, start: multiprocessing.Event, out: multiprocessing.Queue):
    from ganbench.study.storage import open_storage

    storage = open_storage(url)
    study = optuna.load_study(study_name="claims", storage=storage)
    start.wait()
    numbers = []
    for _ in range(share):
        trial = study.ask()
        numbers.append(trial.number)
        study.tell(trial, 1.0)
    out.put(numbers)


def test_each_waiting_trial_is_claimed_by_one_process(tmp_path: Path):
    from ganbench.study.storage import open_storage

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="claims", storage=open_storage(url))
    for i in range(TRIALS):
        study.enqueue_trial({"i": i})
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=_claim, args=(url, TRIALS // PROCESSES, start, out))
        for _ in range(PROCESSES)
    ]
    for proc in procs:
        proc.start()
    start.set()
    claimed = [n for _ in procs for n in out.get(timeout=120)]
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    twice = [n for n, k in Counter(claimed).items() if k > 1]
    assert twice == [] and sorted(claimed) == list(range(TRIALS))
    trials = optuna.load_study(study_name="claims", storage=url).trials
    assert len(trials) == TRIALS and all(t.state == TrialState.COMPLETE for t in trials)
    assert sorted(t.system_attrs["fixed_params"]["i"] for t in trials) == list(range(TRIALS))
