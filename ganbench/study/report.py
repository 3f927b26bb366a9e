"""A study's report: numbers from the runs' metric histories, pictures, and a verdict per
comparison that says what the data can carry.

A row is one cell of the design, a (variant, dataset) pair: two datasets' FIDs are never
averaged. Only runs that FINISHED their budget are scored; a diverged run is a result (it
counts in the divergence rate and, in the tests, as the worst run); a run that crashed
or was killed is no result and is listed apart. One objective, named in the study file
(the final FID by default, the best along training on request), ranks the runs here,
drives Optuna and draws the budget curve.

Everything is read back from MLflow (the parent run's resolved study file, the nested
runs' params, metrics and sample grids), so a report can be rebuilt from the store alone,
and its numbers can be checked against the same histories by anyone.
"""

from __future__ import annotations

import math
import tempfile
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ganbench.study.budget import BudgetPoint, budget_curve
from ganbench.study.results import RunSummary, parent_run, summarize, trial_runs
from ganbench.study.spec import MIN_SEEDS, search_space
from ganbench.study.stats import Comparison, Spread, compare, correct

if TYPE_CHECKING:
    from mlflow import MlflowClient

#: Stability: the spread of a run's FID over its last this many evaluations.
LAST_EVALS = 3


@dataclass
class Row:
    """One (variant, dataset) cell over its seeds (or a search's sampled settings)."""

    variant: str
    dataset: str
    claim: str
    runs: list[RunSummary]
    objective_name: str = "final"
    #: The architecture plugin(s) its runs trained.
    architecture: str = ""
    comparison: Comparison | None = None
    #: A search: the best objective expected from k of its sampled settings, k = 1..N.
    budget: list[BudgetPoint] = field(default_factory=list)
    #: A search: the searched hyperparameters of its setting with the best objective.
    best_setting: dict[str, str] = field(default_factory=dict)
    #: Mean FID of the finished runs at the report's equal real images / equal time.
    at_equal_images: float | None = None
    at_equal_seconds: float | None = None

    @property
    def name(self) -> str:
        return self.variant

    @property
    def label(self) -> str:
        """Its name, and its architecture where that is not already the name."""
        if not self.architecture or self.architecture == self.variant:
            return self.variant
        return f"{self.variant} ({self.architecture})"

    # ---- which runs count -------------------------------------------------------------
    @property
    def scored(self) -> list[RunSummary]:
        """Runs that finished their budget with an FID: the ones averaged."""
        return [r for r in self.runs if r.finished and r.final_fid is not None]

    @property
    def diverged(self) -> list[RunSummary]:
        return [r for r in self.runs if r.diverged]

    @property
    def crashed(self) -> list[RunSummary]:
        return [r for r in self.runs if r.crashed]

    @property
    def unfinished(self) -> list[RunSummary]:
        """Still running (or left RUNNING by a dead worker): neither result nor crash."""
        return [r for r in self.runs if not (r.finished or r.diverged or r.crashed)]

    @property
    def divergence_rate(self) -> float | None:
        n = len(self.scored) + len(self.diverged)
        return len(self.diverged) / n if n else None

    def values(self) -> list[float]:
        """Each result's objective: +inf for a diverged run (the worst), as compared."""
        out = [r.objective(self.objective_name) for r in self.scored]
        return [v for v in out if v is not None] + [math.inf] * len(self.diverged)

    # ---- the numbers --------------------------------------------------------------------
    def spread(self, which: str) -> Spread | None:
        """Over the finished runs: final_fid, best_fid, final_is, or a score's name."""
        getters = {
            "objective": lambda r: r.objective(self.objective_name),
            "final_fid": lambda r: r.final_fid,
            "best_fid": lambda r: r.best_fid,
            "final_is": lambda r: r.final_is,
        }
        get = getters.get(which) or (lambda r: r.score(which))
        return Spread.of([v for v in (get(r) for r in self.scored) if v is not None])

    @property
    def stability(self) -> float | None:
        """Mean over the finished runs of their FID spread over the last evaluations."""
        spreads = [s for s in (r.fid_spread_last(LAST_EVALS) for r in self.scored) if s is not None]
        return sum(spreads) / len(spreads) if spreads else None

    @property
    def best(self) -> RunSummary | None:
        """The finished run with the best objective (a search's best setting)."""
        scored = [r for r in self.scored if r.objective(self.objective_name) is not None]
        return min(scored, key=lambda r: r.objective(self.objective_name) or 0.0, default=None)

    @property
    def wall_seconds(self) -> float | None:
        walls = [r.wall_seconds for r in self.scored + self.diverged if r.wall_seconds]
        return sum(walls) / len(walls) if walls else None

    @property
    def images_per_sec(self) -> float | None:
        speeds = [r.images_per_sec for r in self.runs if r.images_per_sec]
        return sum(speeds) / len(speeds) if speeds else None

    @property
    def budget_text(self) -> str:
        """Steps, D steps and real images per run, batch, eval samples."""
        return budget_text(self.runs)


def budget_text(runs: Sequence[RunSummary]) -> str:
    """'300 G steps = 1,500 D steps (96,000 real images), batch 64, scored on 2,000
    samples'; ranges where a search's settings differ (n_critic changes the G steps)."""
    if not runs:
        return "-"

    def span(values: set[int]) -> str:
        low, high = min(values), max(values)
        return f"{low:,}" if low == high else f"{low:,}..{high:,}"

    g = {r.param_int("total_steps") for r in runs}
    d = {r.param_int("total_steps") * r.param_int("real_batches_per_step", 1) for r in runs}
    images = {r.param_int("total_steps") * r.images_per_step for r in runs}
    batch = span({r.param_int("batch_size") for r in runs})
    text = f"{span(g)} G steps = {span(d)} D steps ({span(images)} real images), batch {batch}"
    samples = {r.param_int("eval_samples") for r in runs} - {0}
    return text + (f", scored on {span(samples)} samples" if samples else "")


@dataclass
class StudyReport:
    name: str
    parent_run_id: str
    summary: str
    baseline: str | None
    fid_name: str | None
    is_name: str | None
    rows: list[Row]
    protocol: list[str]
    datasets: list[str]
    objective: str = "final"
    min_seeds: int = MIN_SEEDS
    correction: str = "holm"
    #: Whether variants train different architectures (their labels then name them).
    mixed_architectures: bool = False
    #: A per-variant hyperparameter search: the budget figure and table are drawn.
    search: bool = False
    #: The common budgets of the equal-images and equal-time views.
    equal_images: int | None = None
    equal_seconds: float | None = None

    @property
    def several_datasets(self) -> bool:
        return len({r.dataset for r in self.rows}) > 1


def collect(client: MlflowClient, parent_run_id: str) -> StudyReport:
    parent = parent_run(client, parent_run_id)
    definition = _definition(client, parent_run_id)
    runs = [summarize(client, r, curves=True) for r in trial_runs(client, parent)]
    order = list(definition.get("variants", {})) or sorted({r.variant for r in runs})
    order += sorted({r.variant for r in runs} - set(order))
    datasets = list(definition.get("datasets", [])) or sorted({r.dataset for r in runs})
    datasets += sorted({r.dataset for r in runs} - set(datasets))
    claims = definition.get("claims", {})
    baseline = definition.get("baseline") or (order[0] if order else None)
    # Studies run before the objective existed ranked (and told Optuna) the best FID.
    objective = definition.get("objective", "best" if definition else "final")
    min_seeds = int(definition.get("min_seeds", MIN_SEEDS))
    correction = definition.get("correction", "holm")
    search = parent.data.params.get("mode", "").endswith("search") and bool(
        definition.get("variant_search")
    )
    rows = []
    for name in order:
        for dataset in datasets:
            mine = [r for r in runs if r.variant == name and r.dataset == dataset]
            if not mine:
                continue
            row = Row(name, dataset, claims.get(name, ""), sorted(mine, key=lambda r: r.seed))
            row.objective_name = objective
            row.architecture = ",".join(sorted({r.architecture for r in mine if r.architecture}))
            if search:
                values = row.values()
                row.budget = budget_curve(values) if values else []
                row.best_setting = _best_setting(row, definition)
            rows.append(row)
    # In a search a variant's runs are N sampled settings, not seeds of one setting: their
    # spread is the search's, and a test on it would answer no question anyone asked
    # (the budget curve is the comparison), so none is drawn.
    if not search:
        _compare(rows, baseline, min_seeds, correction)
    report = StudyReport(
        name=parent.data.tags.get("ganbench.study", parent.info.run_name or ""),
        parent_run_id=parent_run_id,
        summary=parent.data.tags.get("mlflow.note.content", ""),
        baseline=baseline,
        fid_name=_one(r.fid_name for r in runs),
        is_name=_one(r.is_name for r in runs),
        rows=rows,
        protocol=_protocol(client, runs, objective),
        datasets=datasets,
        objective=objective,
        min_seeds=min_seeds,
        correction=correction,
        mixed_architectures=len({r.architecture for r in rows}) > 1,
        search=search,
    )
    _equal_views(report)
    return report


def _compare(rows: list[Row], baseline: str | None, min_seeds: int, correction: str) -> None:
    """Each variant against the baseline on the same dataset; one corrected family."""
    pairs = []
    for row in rows:
        base = next((r for r in rows if r.variant == baseline and r.dataset == row.dataset), None)
        if base is None or row is base:
            continue
        pairs.append((row, compare(row.values(), base.values(), min_seeds=min_seeds)))
    corrected = correct([c for _, c in pairs], correction)
    for (row, _), comparison in zip(pairs, corrected, strict=True):
        row.comparison = comparison


def _equal_views(report: StudyReport) -> None:
    """FID where every cell has trained on as many real images, and for as long, as the
    cell that had the fewest: WGAN-GP's 5 critic batches per step or pooling's slower
    convolutions do not then buy their lead."""
    scored = [r for row in report.rows for r in row.scored]
    if not scored or not report.fid_name:
        return
    report.equal_images = min(r.fid[-1][0] * r.images_per_step for r in scored if r.fid)
    report.equal_seconds = min(r.fid_seconds[-1][1] for r in scored if r.fid_seconds)
    for row in report.rows:
        at_images = [
            _last_before(r.fid, report.equal_images, r.images_per_step) for r in row.scored
        ]
        at_seconds = [_value_at_time(r, report.equal_seconds) for r in row.scored]
        row.at_equal_images = _mean(at_images)
        row.at_equal_seconds = _mean(at_seconds)


def _last_before(series: list[tuple[int, float]], images: int, per_step: int) -> float | None:
    values = [v for step, v in series if step * per_step <= images]
    return values[-1] if values else None


def _value_at_time(run: RunSummary, seconds: float) -> float | None:
    at = dict(run.fid_seconds)
    values = [v for step, v in run.fid if at.get(step, math.inf) <= seconds + 1e-9]
    return values[-1] if values else None


def _mean(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept and len(kept) == len(values) else None


def _one(names: Any) -> str | None:
    found = sorted({n for n in names if n})
    return found[0] if found else None


def _best_setting(row: Row, definition: dict[str, Any]) -> dict[str, str]:
    """The searched hyperparameters (as logged) of the variant's best objective."""
    if row.best is None:
        return {}
    ranges = search_space(
        definition.get("search", {}), definition.get("variant_search", {}), row.variant
    )
    return {k: row.best.params[k] for k in sorted(ranges) if k in row.best.params}


def _definition(client: MlflowClient, run_id: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, "study/resolved.toml", tmp)
            return tomllib.loads(Path(path).read_text())
        except Exception:
            return {}


def _protocol(client: MlflowClient, runs: Sequence[RunSummary], objective: str) -> list[str]:
    """How the scores were computed, from one scored run's short provenance tags."""
    for summary in runs:
        if summary.fid_name is None:
            continue
        tags = client.get_run(summary.run_id).data.tags
        lines = [
            f"{k.removesuffix('.how')}: {v}" for k, v in sorted(tags.items()) if k.endswith(".how")
        ]
        if lines:
            lines.append(
                f"Runs are ranked and compared by their {objective} FID"
                + (" (the budget's end)" if objective == "final" else " along training")
                + "; only runs that finished their budget are averaged; a diverged run counts"
                " as the worst result; crashed runs are listed apart."
            )
            return lines
    return ["no run was scored"]


def fmt(value: float | None, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:.0f}"
