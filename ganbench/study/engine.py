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
"""

from __future__ import annotations

import contextlib
import math
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ganbench.errors import GanbenchError, UsageError
from ganbench.rundir.folder import RunFolder, host
from ganbench.study import storage as st
from ganbench.study.definition import Point, Study, check_study_name, merge_settings
from ganbench.study.trial import Launcher, Outcome, resume_command, run_command

if TYPE_CHECKING:
    import optuna
    from mlflow import MlflowClient
    from optuna.trial import FrozenTrial, Trial

#: Optuna study user attributes.
DEFINITION_ATTR = "ganbench.definition"
PARENT_ATTR = "ganbench.parent_run_id"
#: The MLflow parent run's tag naming its study.
STUDY_TAG = "ganbench.study"
#: The fixed parameters of a search trial enqueued for a new setting of a variant.
NEW_SETTING = {"variant", "seed"}
#: Seeds of search trials are drawn in [0, SEED_RANGE).
SEED_RANGE = 2**31


class StudyStopped(GanbenchError):
    """The study was stopped by a signal; its trials checkpointed and can be resumed."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum


class TrialFailed(Exception):
    """A trial's process failed: recorded as FAIL, and the study goes on."""


@dataclass
class StudyOptions:
    """Where and how a study runs (not what it is: that is the :class:`Study`)."""

    storage_url: str
    tracking_uri: str
    experiment: str
    cache: Path
    devices: list[str]
    jobs: int
    data_args: list[str] = field(default_factory=list)
    #: ``--trials N``: a search with this sampler instead of the grid.
    trials: int | None = None
    sampler: str = "tpe"
    progress: bool = True


@dataclass
class StudyResult:
    parent_run_id: str
    counts: dict[str, int]
    ran: int
    complete: bool


def grid(study: Study) -> list[dict[str, Any]]:
    return [p.params() for p in study.points()]


def open_study(
    study: Study,
    text: str,
    options: StudyOptions,
    storage: optuna.storages.RDBStorage,
    say: Callable[[str], None],
) -> tuple[optuna.Study, bool]:
    """The Optuna study of this name: created (by exactly one worker: names are unique in
    the storage) or loaded and checked to be the same study."""
    import optuna

    sampler = _sampler(study, options)
    try:
        created = optuna.create_study(
            study_name=study.name, storage=storage, sampler=sampler, direction="minimize"
        )
    except optuna.exceptions.DuplicatedStudyError:
        loaded = optuna.load_study(study_name=study.name, storage=storage, sampler=sampler)
        stored = _wait_attr(loaded, DEFINITION_ATTR)
        mode = _mode(options)
        if stored.get("mode", mode) != mode:
            raise UsageError(
                f"study {study.name!r} was run as a {stored.get('mode')}, not a {mode}; give"
                " --name NEW for a new study"
            ) from None
        if stored.get("identity") != study.identity():
            changes = "; ".join(study.differences(stored.get("definition", {}))) or "?"
            raise UsageError(
                f"study {study.name!r} in {st.safe_url(options.storage_url)} was run with other"
                f" settings ({changes}); give --name NEW for a new study, or run it as it was"
            ) from None
        return loaded, False
    created.set_user_attr(
        DEFINITION_ATTR,
        {
            "identity": study.identity(),
            "definition": study.as_dict(),
            "text": text,
            "mode": _mode(options),
        },
    )
    say(f"new study {study.name!r} in {st.safe_url(options.storage_url)}")
    return created, True


def _mode(options: StudyOptions) -> str:
    return "grid" if options.trials is None else "search"


def _sampler(study: Study, options: StudyOptions) -> optuna.samplers.BaseSampler:
    import optuna

    if options.trials is None:
        space = {"variant": list(study.variants), "dataset": study.datasets, "seed": study.seeds}
        return optuna.samplers.GridSampler(space, seed=0)
    if options.sampler == "random":
        return optuna.samplers.RandomSampler(seed=study.seeds[0])
    return optuna.samplers.TPESampler(seed=study.seeds[0])


def _wait_attr(optuna_study: optuna.Study, key: str, seconds: float = 120.0) -> Any:
    """A user attribute the study's creator sets just after creating it."""
    deadline = time.monotonic() + seconds
    while True:
        attrs = optuna_study.user_attrs
        if key in attrs:
            return attrs[key]
        if time.monotonic() > deadline:
            raise UsageError(
                f"study {optuna_study.study_name!r} exists but its creator never finished"
                f" setting it up ({key} missing); delete it with `optuna delete-study"
                f" --study-name {optuna_study.study_name}` and run again"
            )
        time.sleep(1.0)


class StudyRun:
    """One worker process of a study: ``jobs`` trials at a time until none is left."""

    def __init__(
        self, study: Study, text: str, options: StudyOptions, say: Callable[[str], None]
    ) -> None:
        self.study = study
        self.text = text
        self.options = options
        self.say = say
        self.launcher = Launcher()
        self.devices: queue.Queue[str] = queue.Queue()
        for i in range(options.jobs):
            self.devices.put(options.devices[i % len(options.devices)])
        self.lock = threading.Lock()
        self.ran = 0
        #: Points whose trial failed in this process: not retried until the next run.
        self.gave_up: set[str] = set()
        # The name is a folder: never a path that leads out of CACHE/studies.
        self.folder = options.cache / "studies" / check_study_name(study.name)
        self.client: MlflowClient | None = None
        self.parent_run_id = ""
        self.optuna: optuna.Study | None = None
        self._progress: Any = None

    # ---- setup --------------------------------------------------------------------------
    def start(self) -> None:
        from ganbench.tracking.store import open_client

        # One storage (one engine and its connections) for the study and the direct reads.
        self.storage = st.open_storage(self.options.storage_url)
        self.optuna, created = open_study(
            self.study, self.text, self.options, self.storage, self.say
        )
        self.study_id = self.storage.get_study_id_from_name(self.study.name)
        self.client = open_client(self.options.tracking_uri)
        if created:
            self.parent_run_id = self._create_parent()
            self.optuna.set_user_attr(PARENT_ATTR, self.parent_run_id)
        else:
            self.parent_run_id = _wait_attr(self.optuna, PARENT_ATTR)
            self.client.update_run(self.parent_run_id, status="RUNNING")

    def _create_parent(self) -> str:
        import tomli_w

        from ganbench.tracking.provenance import run_tags
        from ganbench.tracking.store import experiment_id, retrying

        assert self.client is not None
        exp = experiment_id(self.client, self.options.experiment)
        tags = {
            **run_tags(),
            "mlflow.source.name": "ganbench study run",
            STUDY_TAG: self.study.name,
        }
        tags["ganbench.study.role"] = "parent"
        if self.study.summary:
            tags["mlflow.note.content"] = self.study.summary
        run = retrying(lambda: self.client.create_run(exp, run_name=self.study.name, tags=tags))
        run_id = run.info.run_id
        params = {
            "study": self.study.name,
            "architecture": self.study.architecture,
            **(
                {"variant_architectures": _variant_archs(self.study)}
                if self.study.architectures
                else {}
            ),
            "datasets": ",".join(self.study.datasets),
            "seeds": ",".join(map(str, self.study.seeds)),
            "variants": len(self.study.variants),
            "baseline": self.study.baseline or "",
            "objective": f"{self.study.objective} FID",
            "min_seeds": self.study.min_seeds,
            "correction": self.study.correction,
            "mode": "grid" if self.options.trials is None else f"{self.options.sampler} search",
            "storage": st.safe_url(self.options.storage_url),
            **{f"settings.{k}": v for k, v in self.study.settings.items()},
        }
        self.client.log_batch(run_id, params=_params(params))
        self.client.log_text(run_id, self.text, "study/study.toml")
        self.client.log_text(
            run_id, tomli_w.dumps(_toml_safe(self.study.as_dict())), "study/resolved.toml"
        )
        return run_id

    # ---- the loop -----------------------------------------------------------------------
    def run(self) -> StudyResult:
        self.start()
        assert self.optuna is not None
        self._reconcile()
        before = st.counts(self._states())
        total = len(self.study.points()) if self.options.trials is None else self._search_total()
        finished = before["done"] + before["diverged"]
        self.say(
            f"study {self.study.name}: {finished} of {total} trials finished,"
            f" {before['running']} running elsewhere; parent run {self.parent_run_id}"
        )
        with self._signals(), self._progress_bar(total, finished):
            with ThreadPoolExecutor(self.options.jobs, thread_name_prefix="trial") as pool:
                futures = [pool.submit(self._worker) for _ in range(self.options.jobs)]
                errors = [f.exception() for f in futures]
            for exc in errors:
                if exc is not None and not isinstance(exc, StudyStopped):
                    raise exc
        return self._finish()

    def _worker(self) -> None:
        assert self.optuna is not None
        while self.launcher.stop_signal is None:
            with self.lock:
                if not self._enqueue_retries():
                    return
                if self.options.trials is not None and self.study.per_variant_search:
                    self._enqueue_next_variant()
                elif self.options.trials is not None:
                    self._enqueue_next_seed()
            self.optuna.optimize(
                self._objective,
                n_trials=1,
                catch=(TrialFailed,),
                gc_after_trial=False,
                show_progress_bar=False,
            )

    def _states(self) -> dict[str, st.PointState]:
        assert self.optuna is not None
        trials = self.optuna.get_trials(deepcopy=False)
        return st.point_states(trials, grid(self.study) if self.options.trials is None else None)

    def _enqueue_retries(self) -> bool:
        """Enqueue the points to run again; False when nothing is left for this worker."""
        states = self._states()
        todo = [
            s
            for s in states.values()
            if s.status in ("pending", "failed", "waiting")
            and st.trial_params_key(s.params) not in self.gave_up
        ]
        for state in todo:
            if state.status == "failed":
                last = state.last_run
                attrs = {"retry_of": last.number} if last else {}
                self.optuna.enqueue_trial(state.params, user_attrs=attrs)
        if self.options.trials is not None:
            c = st.counts(states)
            started = c["done"] + c["diverged"] + c["running"] + c["waiting"] + c["failed"]
            if self.study.per_variant_search:
                started = sum(self._variant_counts().values())
            return bool(todo) or started < self._search_total()
        return bool(todo)

    def _search_total(self) -> int:
        """Trials of a search: N, or N of every variant where variants have their ranges."""
        assert self.options.trials is not None
        if self.study.per_variant_search:
            return self.options.trials * len(self.study.variants)
        return self.options.trials

    def _variant_counts(self) -> dict[str, int]:
        """Sampled settings started per variant (a retried one counts once)."""
        from optuna.trial import TrialState

        assert self.optuna is not None
        out = dict.fromkeys(self.study.variants, 0)
        seen = set()
        for trial in self.optuna.get_trials(deepcopy=False):
            if trial.state == TrialState.PRUNED:
                continue
            params = {**(trial.system_attrs.get("fixed_params") or {}), **trial.params}
            variant = params.get("variant")
            if variant not in out:
                continue
            key = st.trial_params_key(params)
            if set(params) - {"variant", "dataset", "seed"} and key in seen:
                continue  # a retry of a failed setting: the same point
            seen.add(key)
            out[variant] += 1
        return out

    def _enqueue_next_variant(self) -> None:
        """A per-variant search: the next trial goes to the variant with the fewest
        settings so far, waiting ones included (each gets N). Optuna's sampler draws the
        rest of its parameters from that variant's ranges."""
        assert self.optuna is not None
        counts = self._variant_counts()
        variant = min(counts, key=lambda v: counts[v])  # file order breaks ties
        if counts[variant] < (self.options.trials or 0):
            index = list(self.study.variants).index(variant)
            seed = search_seed(self.study.seeds[0], index, counts[variant])
            self.optuna.enqueue_trial({"variant": variant, "seed": seed})

    def _enqueue_next_seed(self) -> None:
        """A study-wide search: the next trial's seed, drawn for it (see search_seed)."""
        assert self.optuna is not None
        started = sum(
            1
            for t in self.optuna.get_trials(deepcopy=False)
            if (t.system_attrs.get("fixed_params") or {}).keys() == {"seed"}
        )
        if started < (self.options.trials or 0):
            self.optuna.enqueue_trial({"seed": search_seed(self.study.seeds[0], 0, started)})

    def _reconcile(self) -> None:
        """Trials left RUNNING by a dead worker of this machine: adopt the result of a run
        that finished meanwhile, wait for a run whose process still lives, else fail the
        trial so that it is resumed."""
        from optuna.trial import TrialState

        assert self.optuna is not None and self.client is not None
        storage = self.storage
        for trial in self.optuna.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            attrs = trial.user_attrs
            if attrs.get("host") != host() or _alive(attrs.get("pid")):
                continue  # another machine's (Optuna's heartbeat covers it) or a live one
            run_dir = Path(attrs["run_dir"]) if attrs.get("run_dir") else None
            if run_dir and RunFolder.is_run_folder(run_dir):
                folder = RunFolder.open(run_dir)
                if folder.held_elsewhere():
                    self.say(f"trial {trial.number} ({_label(trial)}) outlived its study; waiting")
                    while folder.held_elsewhere():
                        time.sleep(2.0)
            trial_id = storage.get_trial_id_from_study_id_trial_number(self.study_id, trial.number)
            run_id = attrs.get("run_id") or (_folder_run_id(run_dir) if run_dir else None)
            result = self._result_of(run_id) if run_id else None
            with contextlib.suppress(Exception):  # another worker may reconcile it first
                if result is not None and result[0] in ("done", "diverged"):
                    for key, value in result[1].items():
                        storage.set_trial_user_attr(trial_id, key, value)
                    value = result[1].get("objective", math.inf)
                    storage.set_trial_state_values(trial_id, TrialState.COMPLETE, [value])
                    self.say(f"trial {trial.number} ({_label(trial)}): adopted its finished run")
                else:
                    if run_id:
                        storage.set_trial_user_attr(trial_id, "run_id", run_id)
                    storage.set_trial_state_values(trial_id, TrialState.FAIL)

    # ---- one trial ----------------------------------------------------------------------
    def _objective(self, trial: Trial) -> float:
        if self.options.trials is not None and self.study.per_variant_search:
            trial_id = self.storage.get_trial_id_from_study_id_trial_number(
                self.study_id, trial.number
            )
            fixed = self.storage.get_trial(trial_id).system_attrs.get("fixed_params") or {}
            if "variant" not in fixed:
                import optuna

                # Another worker took the trial enqueued for this one: set aside, unrun.
                trial.set_user_attr("unassigned", True)
                raise optuna.TrialPruned("no variant was enqueued for this trial")
            if set(fixed) == NEW_SETTING:  # a new setting, not a retry of one
                before = settings_before(
                    self.optuna.get_trials(deepcopy=False), trial.number, fixed["variant"]
                )
                if before >= self.options.trials:
                    import optuna

                    # Workers on other machines counted and enqueued at the same moment:
                    # the variant has its N settings in lower-numbered trials already.
                    trial.set_user_attr("beyond_budget", True)
                    raise optuna.TrialPruned(
                        f"{fixed['variant']} has its {self.options.trials} settings"
                    )
        point, settings = self._suggest(trial)
        duplicate = self._duplicate_of(trial, point)
        if duplicate is not None:
            import optuna

            trial.set_user_attr("duplicate_of", duplicate)
            raise optuna.TrialPruned(f"{point.label()} is trial {duplicate}'s")
        trial.set_user_attr("host", host())
        trial.set_user_attr("pid", os.getpid())
        trial.set_user_attr("variant", point.variant)
        device = self.devices.get()
        try:
            outcome, run_id = self._launch(trial, point, settings, device)
        finally:
            self.devices.put(device)
        return self._record(trial, point, outcome, run_id)

    def _suggest(self, trial: Trial) -> tuple[Point, dict[str, Any]]:
        s = self.study
        if self.options.trials is not None and s.per_variant_search:
            # The variant (and its seed) are fixed by the enqueued trial; its own ranges
            # are then sampled.
            variant = trial.suggest_categorical("variant", list(s.variants))
            dataset = trial.suggest_categorical("dataset", s.datasets)
            seed = _suggest_seed(trial)
            space = s.search_space(variant)
            sampled = {k: _suggest_range(trial, k, r) for k, r in space.items()}
            settings = merge_settings(s.trial_settings(variant, dataset), sampled)
            return Point(variant, dataset, seed), settings
        dataset = trial.suggest_categorical("dataset", s.datasets)
        if self.options.trials is None:
            variant = trial.suggest_categorical("variant", list(s.variants))
            seed = trial.suggest_categorical("seed", s.seeds)
            return Point(variant, dataset, seed), s.trial_settings(variant, dataset)
        # A search: the study's (and dataset's) settings, then the sampled ones.
        seed = _suggest_seed(trial)
        sampled = {k: _suggest_range(trial, k, r) for k, r in s.search.items()}
        settings = merge_settings(s.base_settings(dataset), sampled)
        return Point(f"trial-{trial.number}", dataset, seed), settings

    def _duplicate_of(self, trial: Trial, point: Point) -> int | None:
        """The trial that owns ``point`` if not this one: a finished one, or a running one
        that started before this one (its start was recorded before this check)."""
        from optuna.trial import TrialState

        assert self.optuna is not None
        me = self.storage.get_trial(
            self.storage.get_trial_id_from_study_id_trial_number(self.study_id, trial.number)
        )
        key = st.trial_params_key(point.params() if self.options.trials is None else trial.params)
        for other in self.optuna.get_trials(deepcopy=False):
            if other.number == trial.number:
                continue
            params = other.params or other.system_attrs.get("fixed_params") or {}
            if st.trial_params_key(params) != key:
                continue
            if other.state == TrialState.COMPLETE:
                return other.number
            started = other.datetime_start and me.datetime_start
            earlier = started and (other.datetime_start, other.number) < (
                me.datetime_start,
                me.number,
            )
            if other.state == TrialState.RUNNING and earlier:
                return other.number
        return None

    def _launch(
        self, trial: Trial, point: Point, settings: dict[str, Any], device: str
    ) -> tuple[Outcome, str | None]:
        run_dir = self.folder / "trials" / f"{trial.number:04d}-{_slug(point)}"
        trial.set_user_attr("run_dir", str(run_dir))
        log = self.folder / "logs" / f"{trial.number:04d}-{_slug(point)}.log"
        env = self._env(device)
        state = self._states().get(st.trial_params_key(trial.params))
        previous = state.last_run if state else None
        set_run_id = _run_id_setter(trial)
        if previous is not None:
            ref = previous.user_attrs.get("run_dir") or ""
            if not (ref and RunFolder.is_run_folder(Path(ref))):
                ref = previous.user_attrs["run_id"]
            trial.set_user_attr("resumed_from", previous.number)
            set_run_id(previous.user_attrs["run_id"])
            self.say(
                f"trial {trial.number}: {point.label()} resumes run {previous.user_attrs['run_id']}"
            )
            cmd = resume_command(
                ref,
                device=device,
                tracking_uri=self.options.tracking_uri,
                data_args=self.options.data_args,
            )
            outcome = self.launcher.run(cmd, log, run_dir=None, on_run_id=set_run_id, env=env)
            if not outcome.cannot_resume:
                return outcome, previous.user_attrs["run_id"]
            self._supersede(previous.user_attrs["run_id"], trial.number)
            self.say(
                f"trial {trial.number}: nothing to resume ({outcome.last_line}); starting over"
            )
        architecture = self.study.architecture_of(point.variant)
        tags = {
            "mlflow.parentRunId": self.parent_run_id,
            STUDY_TAG: self.study.name,
            "ganbench.study.variant": point.variant,
            "ganbench.study.architecture": architecture,
            "ganbench.study.trial": str(trial.number),
        }
        searching = self.options.trials is not None and self.study.per_variant_search
        cmd = run_command(
            architecture,
            point.dataset,
            point.seed,
            settings,
            run_dir=run_dir,
            device=device,
            tracking_uri=self.options.tracking_uri,
            experiment=self.options.experiment,
            run_name=(
                f"{point.variant} trial {trial.number}"
                if searching
                else f"{point.variant} seed {point.seed}"
            ),
            tags=tags,
            data_args=self.options.data_args,
        )
        self.say(f"trial {trial.number}: {point.label()} on {device}")
        outcome = self.launcher.run(cmd, log, run_dir=run_dir, on_run_id=set_run_id, env=env)
        return outcome, outcome.run_id

    def _env(self, device: str) -> dict[str, str]:
        if device != "cpu":
            return {}
        # Parallel CPU trials share the cores instead of each taking all of them.
        cores = len(os.sched_getaffinity(0))
        return {"OMP_NUM_THREADS": str(max(1, cores // self.options.jobs))}

    def _supersede(self, run_id: str, trial_number: int) -> None:
        assert self.client is not None
        with contextlib.suppress(Exception):
            self.client.set_tag(run_id, "ganbench.study.superseded_by", f"trial {trial_number}")
            self.client.set_terminated(run_id, status="KILLED")

    def _record(self, trial: Trial, point: Point, outcome: Outcome, run_id: str | None) -> float:
        """The trial's value (the study's objective: its final or best FID; +inf for a
        diverged run), or why there is none."""
        if outcome.stopped and not outcome.finished:
            trial.set_user_attr("outcome", "stopped")
            raise StudyStopped(
                self.launcher.stop_signal or signal.SIGTERM,
                f"study {self.study.name} stopped; run the same command again to resume it",
            )
        result = self._result_of(run_id) if run_id else None
        if result is not None and result[0] in ("done", "diverged"):
            for key, value in result[1].items():
                trial.set_user_attr(key, value)
            self._tick(point, result[0], result[1])
            return float(result[1].get("objective", math.inf))
        trial.set_user_attr("outcome", "failed")
        trial.set_user_attr("error", outcome.last_line[:500])
        with self.lock:
            self.gave_up.add(st.trial_params_key(trial.params))
        self._tick(point, "failed", {"error": outcome.last_line})
        raise TrialFailed(f"{point.label()}: exit code {outcome.returncode}: {outcome.last_line}")

    def _result_of(self, run_id: str) -> tuple[str, dict[str, Any]] | None:
        """(done | diverged, attributes) from the MLflow run, or None if it did not end so."""
        from ganbench.study.results import run_summary

        assert self.client is not None
        try:
            summary = run_summary(self.client, run_id)
        except Exception:
            return None
        if summary.diverged_step is not None:
            return "diverged", {
                "outcome": "diverged",
                "run_id": run_id,
                "diverged_step": summary.diverged_step,
            }
        if summary.status != "FINISHED":
            return None
        attrs: dict[str, Any] = {"outcome": "finished", "run_id": run_id}
        if summary.fid_name:
            attrs |= {"fid_name": summary.fid_name}
            if summary.best_fid is not None:
                attrs |= {"best_fid": summary.best_fid, "final_fid": summary.final_fid}
                attrs["objective"] = attrs[f"{self.study.objective}_fid"]
        return "done", attrs

    # ---- progress -----------------------------------------------------------------------
    def _tick(self, point: Point, what: str, attrs: dict[str, Any]) -> None:
        with self.lock:
            self.ran += 1
            if what == "done":
                fid = attrs.get("objective")
                objective = f"{self.study.objective} {attrs.get('fid_name')}"
                note = f"{objective} {fid:.4g}" if fid is not None else "done"
            elif what == "diverged":
                note = f"diverged at step {attrs.get('diverged_step')}"
            else:
                note = f"failed: {attrs.get('error', '')}"
            self.say(f"{point.label()}: {note}")
            if self._progress is not None and what != "failed":
                self._progress()
            self._log_progress()

    def _log_progress(self) -> None:
        from mlflow.entities import Metric

        assert self.client is not None
        c = st.counts(self._states())
        step = c["done"] + c["diverged"] + c["failed"]
        now = int(time.time() * 1000)
        metrics = [
            Metric(f"trials_{k}", float(v), now, step)
            for k, v in c.items()
            if k in ("done", "diverged", "running", "failed")
        ]
        with contextlib.suppress(Exception):  # progress is news, never a reason to stop
            self.client.log_batch(self.parent_run_id, metrics=metrics)

    @contextlib.contextmanager
    def _progress_bar(self, total: int, done: int) -> Iterator[None]:
        if not self.options.progress:
            yield
            return
        from ganbench.progress import ItemProgress

        with ItemProgress(total, f"study {self.study.name}", unit="trials", start=done) as bar:
            self._progress = bar.advance
            try:
                yield
            finally:
                self._progress = None

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGTERM, signal.SIGINT)
        previous = {s: signal.getsignal(s) for s in handled}

        def handler(signum: int, frame: Any) -> None:
            if self.launcher.stop_signal is None:
                self.say(
                    f"{signal.Signals(signum).name}: stopping the running trials at their next"
                    " step (they checkpoint); a second signal stops them at once"
                )
            self.launcher.stop(signum)

        for s in handled:
            signal.signal(s, handler)
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    # ---- the end ------------------------------------------------------------------------
    def _finish(self) -> StudyResult:
        assert self.client is not None
        states = self._states()
        c = st.counts(states)
        self._log_progress()
        stop = self.launcher.stop_signal
        complete = c["pending"] == c["failed"] == c["waiting"] == c["running"] == 0
        if self.options.trials is not None:
            complete = c["done"] + c["diverged"] >= self._search_total() and c["running"] == 0
        if stop is not None:
            self.client.set_terminated(self.parent_run_id, status="KILLED")
            raise StudyStopped(
                stop,
                f"study {self.study.name} stopped by {signal.Signals(stop).name} with"
                f" {c['done'] + c['diverged']} trials finished; run the same command again to"
                " resume it (interrupted trials continue from their checkpoints)",
            )
        if complete:
            from ganbench.study.report import write_report

            paths = write_report(self.client, self.parent_run_id, self.folder / "report")
            for path in paths:
                self.client.log_artifact(self.parent_run_id, str(path), "report")
            self.client.set_terminated(self.parent_run_id, status="FINISHED")
        elif c["running"] == 0:
            self.client.set_terminated(self.parent_run_id, status="FAILED")
        return StudyResult(self.parent_run_id, c, self.ran, complete)


def settings_before(trials: Sequence[FrozenTrial], number: int, variant: str) -> int:
    """How many new settings of ``variant`` trials numbered below ``number`` drew.

    Why by trial number: each worker counts and enqueues under its own lock, but workers
    on several machines share only the storage, so two may both see N - 1 settings and
    both enqueue one more. Optuna numbers trials atomically in the storage, so "the
    variant's first N new settings by number" is the same answer on every worker, and
    the trial that would be number N + 1 is set aside unrun. A new setting is a trial
    enqueued with its variant and seed alone (a retry carries its whole setting); a trial
    set aside as beyond the budget is not one.
    """
    return sum(
        1
        for trial in trials
        if trial.number < number
        and set(fixed := trial.system_attrs.get("fixed_params") or {}) == NEW_SETTING
        and fixed["variant"] == variant
        and not trial.user_attrs.get("beyond_budget")
    )


def _variant_archs(study: Study) -> str:
    return ",".join(f"{v}={study.architecture_of(v)}" for v in study.variants)


def _run_id_setter(trial: Trial) -> Callable[[str], None]:
    def set_run_id(run_id: str) -> None:
        trial.set_user_attr("run_id", run_id)

    return set_run_id


def search_seed(base: int, variant: int, k: int) -> int:
    """The seed of a search's k-th setting of a variant: drawn for it, so that setting and
    seed are not confounded across a search (every trial of seed 0 would make "the best of
    N settings" also "the best of one seed"), and reproducible from the study's first
    seed. Enqueued with the trial, so a retry of a failed setting keeps its seed."""
    import numpy as np

    return int(np.random.SeedSequence([base, variant, k]).generate_state(1)[0] % SEED_RANGE)


def _suggest_seed(trial: Trial) -> int:
    """A search trial's seed: fixed by its enqueued parameters (search_seed); a trial no
    enqueue reached (a race between machines) gets one from the sampler's RNG."""
    return int(trial.suggest_int("seed", 0, SEED_RANGE - 1))


def _suggest_range(trial: Trial, key: str, spec: dict[str, Any]) -> Any:
    if "choices" in spec:
        return trial.suggest_categorical(key, spec["choices"])
    low, high = spec["low"], spec["high"]
    if isinstance(low, int) and isinstance(high, int) and not spec.get("log"):
        return trial.suggest_int(key, low, high, step=int(spec.get("step", 1)))
    return trial.suggest_float(key, float(low), float(high), log=bool(spec.get("log", False)))


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _folder_run_id(run_dir: Path) -> str | None:
    from ganbench.study.trial import _run_id

    return _run_id(run_dir)


def _label(trial: FrozenTrial) -> str:
    p = trial.params or trial.system_attrs.get("fixed_params") or {}
    return " / ".join(str(v) for v in p.values())


def _slug(point: Point) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in point.variant)
    return f"{keep}-{point.dataset}-s{point.seed}"


def _params(values: dict[str, Any]) -> list[Any]:
    from mlflow.entities import Param

    return [Param(k, str(v)[:6000]) for k, v in values.items()]


def _toml_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _toml_safe(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_toml_safe(v) for v in value]
    return value


def default_devices() -> list[str]:
    """One job per GPU, else one on the CPU."""
    import torch

    if torch.cuda.is_available():
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return ["cpu"]
