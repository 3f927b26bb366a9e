"""What a study's runs say, read back from the MLflow store: the single source of the
numbers in ``ganbench study status`` and in the report (so they can be checked against
the runs' metric histories)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ganbench.errors import UsageError

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

#: ``fid_50k``, ``digits-cnn/fid_2k``; not ``..._std``.
_FID = re.compile(r"(^|/)fid_[0-9.]+k?$")
_IS = re.compile(r"(^|/)is_[0-9.]+k?$")
#: The other scores a report shows where a run was scored with them.
SCORES = {
    "kid": re.compile(r"(^|/)kid_[0-9.]+k?$"),
    "kid_std": re.compile(r"(^|/)kid_[0-9.]+k?_std$"),
    "precision": re.compile(r"(^|/)precision_[0-9.]+k?$"),
    "recall": re.compile(r"(^|/)recall_[0-9.]+k?$"),
    # a class-conditional model's (ganbench/metrics/conditional.py)
    "class_accuracy": re.compile(r"(^|/)class_accuracy_[0-9.]+k?$"),
    "intra_fid": re.compile(r"(^|/)intra_fid_[0-9.]+k?$"),
}
CURVES = ("loss_d", "loss_g", "d_real", "d_fake")


def _first(keys: Any, pattern: re.Pattern[str]) -> str | None:
    found = sorted(k for k in keys if pattern.search(k))
    return found[0] if found else None


def fid_key(keys: Any) -> str | None:
    return _first(keys, _FID)


def is_key(keys: Any) -> str | None:
    return _first(keys, _IS)


@dataclass
class RunSummary:
    """One trial's run, as the report sees it."""

    run_id: str
    name: str
    status: str
    variant: str
    #: The architecture plugin the run trained.
    architecture: str
    dataset: str
    seed: int
    params: dict[str, str]
    diverged_step: int | None
    fid_name: str | None
    #: (step, value) of the FID, the IS, the losses and D outputs, images/s.
    history: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    wall_seconds: float | None = None
    #: (step, seconds since the run started) of each FID: the wall-clock view.
    fid_seconds: list[tuple[int, float]] = field(default_factory=list)

    @property
    def diverged(self) -> bool:
        return self.diverged_step is not None

    @property
    def finished(self) -> bool:
        """Ran its whole budget: the only runs whose scores are results."""
        return self.status == "FINISHED" and not self.diverged

    @property
    def crashed(self) -> bool:
        """Failed or was killed without diverging: no result (listed apart)."""
        return not self.finished and not self.diverged and self.status in ("FAILED", "KILLED")

    def param_int(self, key: str, default: int = 0) -> int:
        try:
            return int(float(self.params.get(key, default)))
        except ValueError:
            return default

    @property
    def images_per_step(self) -> int:
        """Real images one step consumes: its batches (n_critic) times the batch."""
        return self.param_int("real_batches_per_step", 1) * self.param_int("batch_size", 0)

    def score(self, name: str) -> float | None:
        """The last value of one of :data:`SCORES` (kid, precision, class_accuracy...)."""
        key = _first(self.history, SCORES[name])
        series = self.history.get(key or "", [])
        return series[-1][1] if series else None

    def objective(self, which: str) -> float | None:
        """The study's objective: the final or the best FID."""
        return self.final_fid if which == "final" else self.best_fid

    def fid_spread_last(self, k: int) -> float | None:
        """Stability: the standard deviation of the last ``k`` FIDs along training."""
        values = [v for _, v in self.fid[-k:]]
        if len(values) < 2:
            return None
        mean = sum(values) / len(values)
        return (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5

    @property
    def fid(self) -> list[tuple[int, float]]:
        return self.history.get(self.fid_name or "", [])

    @property
    def best_fid(self) -> float | None:
        values = [v for _, v in self.fid]
        return min(values) if values else None

    @property
    def final_fid(self) -> float | None:
        return self.fid[-1][1] if self.fid else None

    @property
    def is_name(self) -> str | None:
        return is_key(self.history)

    @property
    def final_is(self) -> float | None:
        series = self.history.get(self.is_name or "", [])
        return series[-1][1] if series else None

    @property
    def images_per_sec(self) -> float | None:
        series = [v for _, v in self.history.get("images_per_sec", [])]
        return sum(series) / len(series) if series else None


def run_summary(client: MlflowClient, run_id: str, *, curves: bool = False) -> RunSummary:
    """A run's summary; ``curves`` also reads the loss and D-output histories."""
    run = client.get_run(run_id)
    return summarize(client, run, curves=curves)


def summarize(client: MlflowClient, run: Run, *, curves: bool = False) -> RunSummary:
    tags, params = run.data.tags, run.data.params
    diverged = tags.get("ganbench.diverged")
    step = re.match(r"step (\d+)", diverged or "")
    keys = list(run.data.metrics)
    fid_name = fid_key(keys)
    scores = [_first(keys, pattern) for pattern in SCORES.values()]
    wanted = [k for k in (fid_name, is_key(keys), "images_per_sec", *scores) if k]
    if curves:
        wanted += [k for k in CURVES if k in run.data.metrics]
    history = {}
    fid_seconds: list[tuple[int, float]] = []
    start = run.info.start_time or 0
    for key in wanted:
        points = sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.timestamp)
        by_step = {m.step: m.value for m in points}
        history[key] = sorted(by_step.items())
        if key == fid_name:
            at = {m.step: (m.timestamp - start) / 1000 for m in points}
            fid_seconds = sorted(at.items())
    info = run.info
    wall = (info.end_time - info.start_time) / 1000 if info.end_time and info.start_time else None
    return RunSummary(
        run_id=info.run_id,
        name=info.run_name or info.run_id,
        status=info.status,
        variant=tags.get("ganbench.study.variant", params.get("architecture", "")),
        architecture=tags.get("ganbench.study.architecture", params.get("architecture", "")),
        dataset=params.get("dataset", ""),
        seed=int(params.get("seed", 0)),
        params=dict(params),
        diverged_step=int(step.group(1)) if step else (0 if diverged else None),
        fid_name=fid_name,
        history=history,
        wall_seconds=wall,
        fid_seconds=fid_seconds,
    )


def parent_run(client: MlflowClient, ref: str) -> Run:
    """The study's parent run from its run ID, or the newest parent run in an experiment
    of that name."""
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(ref)
    except MlflowException:
        experiment = client.get_experiment_by_name(ref)
        if experiment is None:
            raise UsageError(
                f"{ref!r} is neither a run ID nor an experiment in this store; give the"
                " study's parent run ID (printed by `ganbench study run`) or its experiment"
            ) from None
        found = client.search_runs(
            [experiment.experiment_id],
            filter_string="tags.`ganbench.study.role` = 'parent'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if not found:
            raise UsageError(f"experiment {ref!r} holds no study (no parent run)") from None
        return found[0]
    if run.data.tags.get("ganbench.study.role") != "parent":
        raise UsageError(f"run {ref} is not a study's parent run")
    return run


def trial_runs(client: MlflowClient, parent: Run) -> list[Run]:
    """The parent's nested runs, without those a later trial started over."""
    found = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
        max_results=10_000,
    )
    return [r for r in found if "ganbench.study.superseded_by" not in r.data.tags]
