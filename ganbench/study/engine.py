"""Running a study: Optuna hands out the trials, each trial is a ``ganbench run`` process
nested under one MLflow parent run, and the parent carries the progress and the report.

Why some of this is written here rather than left to Optuna:

* Grid sampling under concurrency can hand the same point to two workers (Optuna says so in
  ``GridSampler``), and it counts a failed point as visited. So each worker first enqueues
  the points whose trials all failed or were interrupted (to be resumed from their
  checkpoints), and a trial that finds its point already finished, or started earlier by
  another trial, is set aside as a duplicate (PRUNED, ``duplicate_of``) before it trains.
* A worker killed on this machine is seen dead at once (by its pid), not after Optuna's
  heartbeat grace period: its trial is failed, or adopted when its run finished meanwhile.
* A worker with nothing left to start waits while other workers' trials run, instead of
  leaving: Optuna fails a dead worker's trial only when someone calls
  ``fail_stale_trials`` after its grace period, and the waiting worker then takes the
  trial over (resumed from the checkpoint in the run's artifacts), so a study whose
  worker died on another machine still finishes.

This module composes the parts: ``planning`` (the Optuna study, what runs next),
``launching`` (processes, devices, signals), ``recording`` (the MLflow parent run, the
trials' results), ``recovery`` (dead workers' trials) and ``tally`` (news of each trial).
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ganbench.errors import GanbenchError
from ganbench.rundir.folder import host
from ganbench.study import storage as st
from ganbench.study.definition import check_study_name
from ganbench.study.launching import TrialLauncher
from ganbench.study.options import StudyOptions
from ganbench.study.planning import PARENT_ATTR, TrialPlanner, open_study, wait_attr
from ganbench.study.recording import StudyRecorder
from ganbench.study.recovery import reconcile
from ganbench.study.spec import Point, Study
from ganbench.study.tally import TrialTally
from ganbench.study.trial import Outcome

if TYPE_CHECKING:
    from optuna.trial import Trial


class StudyStopped(GanbenchError):
    """The study was stopped by a signal; its trials checkpointed and can be resumed."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum


class TrialFailed(Exception):
    """A trial's process failed: recorded as FAIL, and the study goes on."""


@dataclass
class StudyResult:
    parent_run_id: str
    counts: dict[str, int]
    ran: int
    complete: bool


class StudyRun:
    """One worker process of a study: ``jobs`` trials at a time until none is left."""

    def __init__(
        self, study: Study, text: str, options: StudyOptions, say: Callable[[str], None]
    ) -> None:
        self.study = study
        self.text = text
        self.options = options
        self.say = say
        #: Held while a worker thread enqueues, gives a point up or tells of a trial.
        self.lock = threading.Lock()
        # The name is a folder: never a path that leads out of CACHE/studies.
        self.folder = options.cache / "studies" / check_study_name(study.name)
        self.launching = TrialLauncher(self.folder, options, say)
        self.recorder = StudyRecorder(study, text, options)
        self.tally = TrialTally(study.name, study.objective, self.lock, say, self._log_progress)
        self._planner: TrialPlanner | None = None

    @property
    def planner(self) -> TrialPlanner:
        assert self._planner is not None, "start() first"
        return self._planner

    @property
    def parent_run_id(self) -> str:
        return self.recorder.parent_run_id

    # ---- setup --------------------------------------------------------------------------
    def start(self) -> None:
        # One storage (one engine and its connections) for the study and the direct reads.
        storage = st.open_storage(self.options.storage_url)
        optuna_study, opened = open_study(self.study, self.text, self.options, storage, self.say)
        self._planner = TrialPlanner(self.study, self.options, optuna_study, storage)
        self.recorder.connect()
        if opened == "created":
            optuna_study.set_user_attr(PARENT_ATTR, self.recorder.create_parent())
        else:
            self.recorder.reopen_parent(wait_attr(optuna_study, PARENT_ATTR))
        if opened == "extended":
            self.recorder.record_seeds()

    # ---- the loop -----------------------------------------------------------------------
    def run(self) -> StudyResult:
        self.start()
        reconcile(self.planner, self.recorder.result_of, self.say)
        before = st.counts(self.planner.states())
        total = self.planner.total()
        finished = before["done"] + before["diverged"]
        self.say(
            f"study {self.study.name}: {finished} of {total} trials finished,"
            f" {before['running']} running elsewhere; parent run {self.parent_run_id}"
        )
        bar = self.tally.progress_bar(total, finished, show=self.options.progress)
        with self.launching.signals(), bar:
            with ThreadPoolExecutor(self.options.jobs, thread_name_prefix="trial") as pool:
                futures = [pool.submit(self._worker) for _ in range(self.options.jobs)]
                errors = [f.exception() for f in futures]
            for exc in errors:
                if exc is not None and not isinstance(exc, StudyStopped):
                    raise exc
        return self._finish()

    def _worker(self) -> None:
        planner = self.planner
        said = False
        while self.launching.stop_signal is None:
            with self.lock:
                todo = planner.enqueue_retries()
                if todo:
                    planner.enqueue_next()
            if not todo:
                running = st.counts(planner.states())["running"]
                if not running:
                    return
                if not said:
                    self.say(
                        f"waiting for {running} trial(s) running elsewhere (a dead worker's"
                        f" trial is taken over {planner.storage.grace_period:.0f} s after its"
                        " last heartbeat)"
                    )
                    said = True
                self._wait_for_others()
                continue
            planner.optuna.optimize(
                self._objective,
                n_trials=1,
                catch=(TrialFailed,),
                gc_after_trial=False,
                show_progress_bar=False,
            )

    # ---- one trial ----------------------------------------------------------------------
    def _objective(self, trial: Trial) -> float:
        self.planner.check_assignment(trial)
        point, settings = self.planner.suggest(trial)
        duplicate = self.planner.duplicate_of(trial, point)
        if duplicate is not None:
            import optuna

            trial.set_user_attr("duplicate_of", duplicate)
            raise optuna.TrialPruned(f"{point.label()} is trial {duplicate}'s")
        trial.set_user_attr("host", host())
        trial.set_user_attr("pid", os.getpid())
        trial.set_user_attr("variant", point.variant)
        with self.launching.device() as device:
            outcome, run_id = self._launch(trial, point, settings, device)
        return self._record(trial, point, outcome, run_id)

    def _launch(
        self, trial: Trial, point: Point, settings: dict[str, Any], device: str
    ) -> tuple[Outcome, str | None]:
        """Resume the run an earlier trial of the point left, else start a fresh one."""
        self.launching.claim_folder(trial, point)
        previous = self.planner.last_run(trial)
        if previous is not None:
            outcome = self.launching.resume(trial, point, previous, device)
            if not outcome.cannot_resume:
                return outcome, previous.user_attrs["run_id"]
            self.recorder.supersede(previous.user_attrs["run_id"], trial.number)
            self.say(
                f"trial {trial.number}: nothing to resume ({outcome.last_line}); starting over"
            )
        architecture = self.study.architecture_of(point.variant)
        outcome = self.launching.start(
            trial,
            point,
            settings,
            device,
            architecture=architecture,
            run_name=self.recorder.trial_run_name(point, trial.number),
            tags=self.recorder.trial_tags(point, architecture, trial.number),
        )
        return outcome, outcome.run_id

    def _record(self, trial: Trial, point: Point, outcome: Outcome, run_id: str | None) -> float:
        """The trial's value (the study's objective: its final or best FID; +inf for a
        diverged run), or why there is none."""
        if outcome.stopped and not outcome.finished:
            trial.set_user_attr("outcome", "stopped")
            raise StudyStopped(
                self.launching.stop_signal or signal.SIGTERM,
                f"study {self.study.name} stopped; run the same command again to resume it",
            )
        result = self.recorder.result_of(run_id) if run_id else None
        if result is not None and result[0] in ("done", "diverged"):
            for key, value in result[1].items():
                trial.set_user_attr(key, value)
            self.tally.tick(point, result[0], result[1])
            return float(result[1].get("objective", math.inf))
        trial.set_user_attr("outcome", "failed")
        trial.set_user_attr("error", outcome.last_line[:500])
        with self.lock:
            self.planner.give_up(trial)
        self.tally.tick(point, "failed", {"error": outcome.last_line})
        raise TrialFailed(f"{point.label()}: exit code {outcome.returncode}: {outcome.last_line}")

    def _wait_for_others(self) -> None:
        """One poll while other workers' trials run: dead workers' trials of this machine
        are failed at once (by pid), other machines' after Optuna's grace period."""
        import optuna

        deadline = time.monotonic() + min(5.0, self.planner.storage.heartbeat_interval)
        while self.launching.stop_signal is None and time.monotonic() < deadline:
            time.sleep(0.2)
        with self.lock:
            reconcile(self.planner, self.recorder.result_of, self.say)
            optuna.storages.fail_stale_trials(self.planner.optuna)

    def _log_progress(self) -> None:
        self.recorder.log_progress(st.counts(self.planner.states()))

    # ---- the end ------------------------------------------------------------------------
    def _finish(self) -> StudyResult:
        c = st.counts(self.planner.states())
        self._log_progress()
        stop = self.launching.stop_signal
        complete = self.planner.complete(c)
        if stop is not None:
            self.recorder.end_parent("KILLED")
            raise StudyStopped(
                stop,
                f"study {self.study.name} stopped by {signal.Signals(stop).name} with"
                f" {c['done'] + c['diverged']} trials finished; run the same command again to"
                " resume it (interrupted trials continue from their checkpoints)",
            )
        if complete:
            self.recorder.publish_report(self.folder / "report")
        elif c["running"] == 0:
            self.recorder.end_parent("FAILED")
        return StudyResult(self.parent_run_id, c, self.tally.ran, complete)
