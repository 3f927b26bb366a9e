"""``ganbench resume RUN --steps N``: a finished (or stopped) run trains on to a new budget
on purpose, recorded in MLflow and run.json, and ends as a run given that budget from the
start would (bit for bit, CPU); every other setting is still refused; later resumes keep
the new budget. Tiny in-process runs into one real SQLite MLflow store."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from tinyruns import (
    STEPS,
    TINY,
    StopAt,
    assert_as_uninterrupted,
    error_lines,
    invoke,
    reference_run,
    the_run,
    train,
)

from ganbench.rundir.folder import RunFolder

SHORT = 8  # the first budget; STEPS (12) is the extended one


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("store")


@pytest.fixture(scope="module")
def reference(store) -> Path:
    """A run given STEPS from the start."""
    return reference_run(store)


def finished_short_run(store: Path, folder: Path) -> Path:
    run_dir = folder / "short"
    done = train(store, run_dir, "--steps", str(SHORT))
    assert done.exit_code == 0, done.output
    return run_dir


def resume(folder: Path, run_dir: Path, *extra: str, stop: int | None = None):
    with pytest.MonkeyPatch.context() as mp:
        if stop is not None:
            mp.setattr("ganbench.training.launch.StopSignals", lambda: StopAt(stop))
        return invoke(folder, "resume", str(run_dir), "--no-progress", *extra)


def one_error(result) -> str:
    lines = error_lines(result.output)
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def test_a_finished_run_trains_on_to_a_new_budget(tmp_path, store, reference):
    run_dir = finished_short_run(store, tmp_path)
    uri = f"sqlite:///{store / 'm.db'}"

    plain = resume(tmp_path, run_dir)  # as before: a finished run has nothing to resume
    assert plain.exit_code == 2
    line = one_error(plain)
    assert f"has FINISHED its {SHORT} steps; there is nothing to resume" in line
    assert "--steps N" in line
    same = resume(tmp_path, run_dir, "--steps", str(SHORT))
    assert same.exit_code == 2
    assert f"is at step {SHORT} already" in one_error(same)
    for bad, message in [
        (("--steps", "0"), "steps must be at least 1; got 0"),
        (("--epochs", "-1"), "epochs must be more than 0; got -1.0"),
        (("--steps", "12", "--epochs", "2"), "give one of --steps, --epochs or --d-steps"),
    ]:
        refused = resume(tmp_path, run_dir, *bad)
        assert refused.exit_code == 2 and message in one_error(refused), refused.output
    _, run = the_run(uri, run_dir)
    assert run.info.status == "FINISHED" and "ganbench.resumes" not in run.data.tags

    extended = resume(tmp_path, run_dir, "--steps", str(STEPS))
    assert extended.exit_code == 0, extended.output
    assert f"budget: steps {SHORT} -> {STEPS} at " in extended.output
    assert f"resumed from step {SHORT} of {STEPS}" in extended.output
    client, run = the_run(uri, run_dir)
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert tags["ganbench.budget_extended"].startswith(f"steps {SHORT} -> {STEPS} at 20")
    assert json.loads(tags["ganbench.budget"])["total_steps"] == str(STEPS)
    assert run.data.params["steps"] == str(SHORT)  # MLflow params never change
    info = RunFolder.open(run_dir).info
    assert info["budget"]["steps"] == str(STEPS)
    assert info["budget_extended"] == [tags["ganbench.budget_extended"]]
    history = client.get_metric_history(run.info.run_id, "loss_d")
    assert sorted(m.step for m in history) == list(range(2, STEPS + 1, 2))
    assert_as_uninterrupted(reference, run_dir)

    again = resume(tmp_path, run_dir)  # the new budget is spent
    assert again.exit_code == 2
    assert f"has FINISHED its {STEPS} steps" in one_error(again)


def test_an_extension_that_stops_is_resumed_in_its_new_budget(tmp_path, store, reference):
    """Stopped two steps into the extension, a plain resume continues to the new budget
    (the checkpoint and the budget tag say 12; the logged param still says 8)."""
    run_dir = finished_short_run(store, tmp_path)
    stopped = resume(tmp_path, run_dir, "--steps", str(STEPS), stop=2)
    assert stopped.exit_code == 128 + signal.SIGTERM, stopped.output
    assert f"stopped by SIGTERM at step {SHORT + 2} of {STEPS}" in stopped.output
    done = resume(tmp_path, run_dir)
    assert done.exit_code == 0, done.output
    assert f"resumed from step {SHORT + 2} of {STEPS}" in done.output
    assert "budget:" not in done.output  # nothing changed this time
    _, run = the_run(f"sqlite:///{store / 'm.db'}", run_dir)
    assert run.info.status == "FINISHED" and run.data.tags["ganbench.resumes"] == "2"
    assert_as_uninterrupted(reference, run_dir)


def test_every_other_changed_setting_is_still_refused(tmp_path, store, reference):
    """`run --resume` checks the flags against the run: after an extension, against the
    budget in force (12; the logged param says 8), and every other setting as before."""
    run_dir = finished_short_run(store, tmp_path)
    stopped = resume(tmp_path, run_dir, "--steps", str(STEPS), stop=2)
    assert stopped.exit_code == 128 + signal.SIGTERM, stopped.output
    again = ("run", "dcgan", *TINY, "--resume", str(run_dir))
    changed = invoke(tmp_path, *again, "--set", "lr=0.001")
    assert changed.exit_code == 2
    line = one_error(changed)
    assert line.endswith(
        "these settings differ: lr=0.001 (the run has 0.0002). Resume without them, or"
        " start a new run for a new variant"
    )
    old_budget = invoke(tmp_path, *again, "--steps", str(SHORT))
    assert old_budget.exit_code == 2
    assert f"steps={SHORT} (the run has {STEPS})" in one_error(old_budget)
    _, run = the_run(f"sqlite:///{store / 'm.db'}", run_dir)
    assert run.info.status == "KILLED" and run.data.tags["ganbench.resumes"] == "1"

    same = invoke(tmp_path, *again)
    assert same.exit_code == 0, same.output
    assert f"resumed from step {SHORT + 2} of {STEPS}" in same.output
    assert_as_uninterrupted(reference, run_dir)
