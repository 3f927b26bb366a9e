"""Which trials a study has, and which one a worker runs next: the Optuna study (created by
one worker, or loaded and checked to be the same study), its sampler, the points to run
again, a search's next setting, and the checks that set a trial aside before it trains.

Optuna's ``GridSampler`` can hand the same point to two workers under concurrency and
counts a failed point as visited, so each worker enqueues the points whose trials all
failed or were interrupted, and a trial that finds its point finished, or started earlier
by another trial, is set aside as a duplicate (see ``ganbench.study.engine``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ganbench.errors import UsageError
from ganbench.study import storage as st
from ganbench.study.options import StudyOptions
from ganbench.study.seeds import added_seeds, seeds_are_choices
from ganbench.study.spec import Point, Study, merge_settings

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial, Trial

#: Optuna study user attributes.
DEFINITION_ATTR = "ganbench.definition"
PARENT_ATTR = "ganbench.parent_run_id"
#: The fixed parameters of a search trial enqueued for a new setting of a variant.
NEW_SETTING = {"variant", "seed"}
#: Seeds of search trials are drawn in [0, SEED_RANGE).
SEED_RANGE = 2**31


def grid(study: Study) -> list[dict[str, Any]]:
    return [p.params() for p in study.points()]


def open_study(
    study: Study,
    text: str,
    options: StudyOptions,
    storage: optuna.storages.RDBStorage,
    say: Callable[[str], None],
) -> tuple[optuna.Study, str]:
    """The Optuna study of this name and how it was opened: ``created`` (by exactly one
    worker: names are unique in the storage), ``loaded`` and checked to be the same study,
    or ``extended``: the same study with seeds added (see :func:`added_seeds`)."""
    import optuna

    sampler = _sampler(study, options)
    try:
        created = optuna.create_study(
            study_name=study.name, storage=storage, sampler=sampler, direction="minimize"
        )
    except optuna.exceptions.DuplicatedStudyError:
        loaded = optuna.load_study(study_name=study.name, storage=storage, sampler=sampler)
        stored = wait_attr(loaded, DEFINITION_ATTR)
        mode = options.mode
        if stored.get("mode", mode) != mode:
            raise UsageError(
                f"study {study.name!r} was run as a {stored.get('mode')}, not a {mode}; give"
                " --name NEW for a new study"
            ) from None
        if stored.get("identity") == study.identity():
            return loaded, "loaded"
        old_seeds = added_seeds(study, stored, mode)
        if old_seeds is not None and seeds_are_choices(loaded):
            raise UsageError(
                f"study {study.name!r} was run before seeds could be added to a study (its"
                f" trials hold the seed as a choice of {old_seeds}, which Optuna cannot"
                " widen); give --name NEW for a new study with these seeds"
            ) from None
        if old_seeds is None:
            changes = "; ".join(study.differences(stored.get("definition", {}))) or "?"
            raise UsageError(
                f"study {study.name!r} in {st.safe_url(options.storage_url)} was run with other"
                f" settings ({changes}); give --name NEW for a new study, add seeds to it"
                " (--seeds N, more than it had), or run it as it was"
            ) from None
        loaded.set_user_attr(DEFINITION_ATTR, _definition(study, text, mode))
        say(
            f"study {study.name!r}: seeds {old_seeds} -> {study.seeds}; its finished trials"
            " are kept and the new seeds' trials run"
        )
        return loaded, "extended"
    created.set_user_attr(DEFINITION_ATTR, _definition(study, text, options.mode))
    say(f"new study {study.name!r} in {st.safe_url(options.storage_url)}")
    return created, "created"


def _definition(study: Study, text: str, mode: str) -> dict[str, Any]:
    return {"identity": study.identity(), "definition": study.as_dict(), "text": text, "mode": mode}


def grid_space(study: Study) -> dict[str, list[Any]]:
    """The grid's axes as Optuna's GridSampler stores them with each trial it samples."""
    return {"variant": list(study.variants), "dataset": study.datasets, "seed": study.seeds}


def _sampler(study: Study, options: StudyOptions) -> optuna.samplers.BaseSampler:
    import optuna

    if options.trials is None:
        return optuna.samplers.GridSampler(grid_space(study), seed=0)
    if options.sampler == "random":
        return optuna.samplers.RandomSampler(seed=study.seeds[0])
    return optuna.samplers.TPESampler(seed=study.seeds[0])


def wait_attr(optuna_study: optuna.Study, key: str, seconds: float = 120.0) -> Any:
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


class TrialPlanner:
    """The trials of one study in its Optuna storage: what is left to run, what to enqueue
    next, and the point and settings a trial runs (or why it is set aside unrun)."""

    def __init__(
        self,
        study: Study,
        options: StudyOptions,
        optuna_study: optuna.Study,
        storage: optuna.storages.RDBStorage,
    ) -> None:
        self.study = study
        self.options = options
        self.optuna = optuna_study
        # One storage (one engine and its connections) for the study and the direct reads.
        self.storage = storage
        self.study_id = storage.get_study_id_from_name(study.name)
        #: Points whose trial failed in this process: not retried until the next run.
        self.gave_up: set[str] = set()
        #: Grid studies run before seeds could be added drew the seed from a choice list.
        self.seed_choices = not self.searching and seeds_are_choices(optuna_study)

    @property
    def searching(self) -> bool:
        """``--trials N``: a search, not the grid."""
        return self.options.trials is not None

    def trial_id(self, number: int) -> int:
        return self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)

    # ---- what is left ---------------------------------------------------------------------
    def states(self) -> dict[str, st.PointState]:
        trials = self.optuna.get_trials(deepcopy=False)
        return st.point_states(trials, grid(self.study) if not self.searching else None)

    def total(self) -> int:
        """The trials the study runs in all: its grid, or a search's trials."""
        return len(self.study.points()) if not self.searching else self.search_total()

    def search_total(self) -> int:
        """Trials of a search: N, or N of every variant where variants have their ranges."""
        assert self.options.trials is not None
        if self.study.per_variant_search:
            return self.options.trials * len(self.study.variants)
        return self.options.trials

    def complete(self, c: dict[str, int]) -> bool:
        """Whether the counts of :func:`storage.counts` say every trial has its result."""
        if self.searching:
            return c["done"] + c["diverged"] >= self.search_total() and c["running"] == 0
        return c["pending"] == c["failed"] == c["waiting"] == c["running"] == 0

    def last_run(self, trial: Trial) -> FrozenTrial | None:
        """The latest earlier trial of this trial's point, whose run it resumes."""
        state = self.states().get(st.trial_params_key(trial.params))
        return state.last_run if state else None

    def give_up(self, trial: Trial) -> None:
        """Its point is not retried by this process (the caller holds the worker lock)."""
        self.gave_up.add(st.trial_params_key(trial.params))

    # ---- what to run next -----------------------------------------------------------------
    def enqueue_retries(self) -> bool:
        """Enqueue the points to run again; False when nothing is left for this worker."""
        states = self.states()
        todo = [
            s
            for s in states.values()
            if s.status in ("pending", "failed", "waiting")
            and st.trial_params_key(s.params) not in self.gave_up
        ]
        unseen = not self.searching and self._grid_changed()
        for state in todo:
            if state.status == "failed":
                last = state.last_run
                attrs = {"retry_of": last.number} if last else {}
                self.optuna.enqueue_trial(state.params, user_attrs=attrs)
            elif state.status == "pending" and unseen:
                self.optuna.enqueue_trial(state.params)
        if self.searching:
            c = st.counts(states)
            started = c["done"] + c["diverged"] + c["running"] + c["waiting"] + c["failed"]
            if self.study.per_variant_search:
                started = sum(self.variant_counts().values())
            return bool(todo) or started < self.search_total()
        return bool(todo)

    def _grid_changed(self) -> bool:
        """Whether trials of another grid are stored (a study whose seeds were added).

        Optuna's GridSampler counts a point visited only by trials of its own search space
        and gives trial number k grid point k, so in a grown grid it would hand out finished
        points (each set aside as a duplicate, one trial wasted a time). Enqueueing the
        pending points names them instead; an enqueued trial takes no grid point."""
        space = grid_space(self.study)
        for trial in self.optuna.get_trials(deepcopy=False):
            stored = trial.system_attrs.get("search_space")
            if stored is not None and {k: list(v) for k, v in stored.items()} != space:
                return True
        return False

    def enqueue_next(self) -> None:
        """A search's next setting: of the variant with the fewest, or study-wide."""
        if self.searching and self.study.per_variant_search:
            self._enqueue_next_variant()
        elif self.searching:
            self._enqueue_next_seed()

    def variant_counts(self) -> dict[str, int]:
        """Sampled settings started per variant (a retried one counts once)."""
        from optuna.trial import TrialState

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
        counts = self.variant_counts()
        variant = min(counts, key=lambda v: counts[v])  # file order breaks ties
        if counts[variant] < (self.options.trials or 0):
            index = list(self.study.variants).index(variant)
            seed = search_seed(self.study.seeds[0], index, counts[variant])
            self.optuna.enqueue_trial({"variant": variant, "seed": seed})

    def _enqueue_next_seed(self) -> None:
        """A study-wide search: the next trial's seed, drawn for it (see search_seed)."""
        started = sum(
            1
            for t in self.optuna.get_trials(deepcopy=False)
            if (t.system_attrs.get("fixed_params") or {}).keys() == {"seed"}
        )
        if started < (self.options.trials or 0):
            self.optuna.enqueue_trial({"seed": search_seed(self.study.seeds[0], 0, started)})

    # ---- one trial --------------------------------------------------------------------------
    def check_assignment(self, trial: Trial) -> None:
        """A per-variant search's trial runs the setting enqueued for it: pruned unrun
        when another worker took that, or when its variant has its N settings already."""
        if not (self.searching and self.study.per_variant_search):
            return
        stored = self.storage.get_trial(self.trial_id(trial.number))
        fixed = stored.system_attrs.get("fixed_params") or {}
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

    def suggest(self, trial: Trial) -> tuple[Point, dict[str, Any]]:
        """The trial's point and its ``--set`` values (sampled ones in a search)."""
        s = self.study
        if self.searching and s.per_variant_search:
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
        if not self.searching:
            variant = trial.suggest_categorical("variant", list(s.variants))
            if self.seed_choices:
                seed = trial.suggest_categorical("seed", s.seeds)
            else:
                seed = _suggest_seed(trial)
            return Point(variant, dataset, seed), s.trial_settings(variant, dataset)
        # A search: the study's (and dataset's) settings, then the sampled ones.
        seed = _suggest_seed(trial)
        sampled = {k: _suggest_range(trial, k, r) for k, r in s.search.items()}
        settings = merge_settings(s.base_settings(dataset), sampled)
        return Point(f"trial-{trial.number}", dataset, seed), settings

    def duplicate_of(self, trial: Trial, point: Point) -> int | None:
        """The trial that owns ``point`` if not this one: a finished one, or a running one
        that started before this one (its start was recorded before this check)."""
        from optuna.trial import TrialState

        me = self.storage.get_trial(self.trial_id(trial.number))
        key = st.trial_params_key(point.params() if not self.searching else trial.params)
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


def search_seed(base: int, variant: int, k: int) -> int:
    """The seed of a search's k-th setting of a variant: drawn for it, so that setting and
    seed are not confounded across a search (every trial of seed 0 would make "the best of
    N settings" also "the best of one seed"), and reproducible from the study's first
    seed. Enqueued with the trial, so a retry of a failed setting keeps its seed."""
    import numpy as np

    return int(np.random.SeedSequence([base, variant, k]).generate_state(1)[0] % SEED_RANGE)


def _suggest_seed(trial: Trial) -> int:
    """A trial's seed as an integer parameter: a grid's from its grid point or enqueued
    point; a search's fixed by its enqueued parameters (search_seed), and a search trial no
    enqueue reached (a race between machines) gets one from the sampler's RNG."""
    return int(trial.suggest_int("seed", 0, SEED_RANGE - 1))


def _suggest_range(trial: Trial, key: str, spec: dict[str, Any]) -> Any:
    if "choices" in spec:
        return trial.suggest_categorical(key, spec["choices"])
    low, high = spec["low"], spec["high"]
    if isinstance(low, int) and isinstance(high, int) and not spec.get("log"):
        return trial.suggest_int(key, low, high, step=int(spec.get("step", 1)))
    return trial.suggest_float(key, float(low), float(high), log=bool(spec.get("log", False)))
