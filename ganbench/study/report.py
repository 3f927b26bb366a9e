"""A study's report: numbers from the runs' metric histories, pictures, and a verdict per
variant that says whether its difference from the baseline is real.

Everything is read back from MLflow (the parent run's resolved study file, the nested
runs' metrics and sample grids), so a report can be rebuilt from the store alone, and its
numbers can be checked against the same histories by anyone.
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
from ganbench.study.definition import search_space
from ganbench.study.results import RunSummary, parent_run, summarize, trial_runs
from ganbench.study.stats import Difference, Spread, welch_difference

if TYPE_CHECKING:
    from mlflow import MlflowClient


@dataclass
class VariantRow:
    """One variant over its seeds."""

    name: str
    claim: str
    runs: list[RunSummary]
    final_fid: Spread | None = None
    best_fid: Spread | None = None
    final_is: Spread | None = None
    diverged: list[tuple[int, int]] = field(default_factory=list)  # (seed, step)
    wall_seconds: float | None = None
    images_per_sec: float | None = None
    difference: Difference | None = None
    #: The architecture plugin(s) its runs trained.
    architecture: str = ""
    #: A search: the best final FID expected from k of its sampled settings, k = 1..N.
    budget: list[BudgetPoint] = field(default_factory=list)
    #: A search: the searched hyperparameters of its setting with the lowest final FID.
    best_setting: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """Its name, and its architecture where that is not already the name."""
        if not self.architecture or self.architecture == self.name:
            return self.name
        return f"{self.name} ({self.architecture})"

    @property
    def best(self) -> RunSummary | None:
        """The scored run with the lowest final FID (a search's best setting)."""
        return min(self.scored, key=lambda r: r.final_fid or 0.0, default=None)

    @property
    def scored(self) -> list[RunSummary]:
        """Runs that finished with an FID (diverged runs are counted, not averaged)."""
        return [r for r in self.runs if r.diverged_step is None and r.final_fid is not None]


@dataclass
class StudyReport:
    name: str
    parent_run_id: str
    summary: str
    baseline: str | None
    fid_name: str | None
    is_name: str | None
    rows: list[VariantRow]
    protocol: list[str]
    datasets: list[str]
    #: Whether variants train different architectures (their labels then name them).
    mixed_architectures: bool = False
    #: A per-variant hyperparameter search: the budget figure and table are drawn.
    search: bool = False


def collect(client: MlflowClient, parent_run_id: str) -> StudyReport:
    parent = parent_run(client, parent_run_id)
    definition = _definition(client, parent_run_id)
    runs = [summarize(client, r, curves=True) for r in trial_runs(client, parent)]
    order = list(definition.get("variants", {})) or sorted({r.variant for r in runs})
    order += sorted({r.variant for r in runs} - set(order))
    claims = definition.get("claims", {})
    baseline = definition.get("baseline") or (order[0] if order else None)
    search = parent.data.params.get("mode", "").endswith("search") and bool(
        definition.get("variant_search")
    )
    rows = []
    for name in order:
        mine = sorted((r for r in runs if r.variant == name), key=lambda r: r.seed)
        if not mine:
            continue
        row = VariantRow(name, claims.get(name, ""), mine)
        row.architecture = ",".join(sorted({r.architecture for r in mine if r.architecture}))
        scored = row.scored
        row.final_fid = Spread.of([r.final_fid for r in scored])
        row.best_fid = Spread.of([r.best_fid for r in scored if r.best_fid is not None])
        row.final_is = Spread.of([r.final_is for r in scored if r.final_is is not None])
        row.diverged = [(r.seed, r.diverged_step or 0) for r in mine if r.diverged_step is not None]
        walls = [r.wall_seconds for r in mine if r.wall_seconds]
        row.wall_seconds = sum(walls) / len(walls) if walls else None
        speeds = [r.images_per_sec for r in mine if r.images_per_sec]
        row.images_per_sec = sum(speeds) / len(speeds) if speeds else None
        if search:
            # Each sampled setting's final FID; a diverged one is +inf (a failed draw).
            values = [
                math.inf if r.diverged_step is not None else r.final_fid
                for r in mine
                if r.diverged_step is not None or r.final_fid is not None
            ]
            row.budget = budget_curve(values) if values else []
            row.best_setting = _best_setting(row, definition)
        rows.append(row)
    base = next((r for r in rows if r.name == baseline), None)
    # In a search a variant's runs are N sampled settings, not seeds of one setting: their
    # spread is the search's, and a Welch test on it would answer no question anyone asked
    # (the budget curve is the comparison), so none is drawn.
    if base is not None and not search:
        for row in rows:
            if row is not base:
                row.difference = welch_difference(
                    [r.final_fid for r in row.scored], [r.final_fid for r in base.scored]
                )
    fid_names = sorted({r.fid_name for r in runs if r.fid_name})
    is_names = sorted({r.is_name for r in runs if r.is_name})
    return StudyReport(
        name=parent.data.tags.get("ganbench.study", parent.info.run_name or ""),
        parent_run_id=parent_run_id,
        summary=parent.data.tags.get("mlflow.note.content", ""),
        baseline=baseline,
        fid_name=fid_names[0] if fid_names else None,
        is_name=is_names[0] if is_names else None,
        rows=rows,
        protocol=_protocol(client, runs),
        datasets=definition.get("datasets", []),
        mixed_architectures=len({r.architecture for r in rows}) > 1,
        search=search,
    )


def _best_setting(row: VariantRow, definition: dict[str, Any]) -> dict[str, str]:
    """The searched hyperparameters (as logged) of the variant's lowest final FID."""
    if row.best is None:
        return {}
    ranges = search_space(
        definition.get("search", {}), definition.get("variant_search", {}), row.name
    )
    return {k: row.best.params[k] for k in sorted(ranges) if k in row.best.params}


def _definition(client: MlflowClient, run_id: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, "study/resolved.toml", tmp)
            return tomllib.loads(Path(path).read_text())
        except Exception:
            return {}


def _protocol(client: MlflowClient, runs: Sequence[RunSummary]) -> list[str]:
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
                "FID and IS of each run are its last scores (the budget's end); best FID is the"
                " lowest along training. Diverged runs are counted, not averaged."
            )
            return lines
    return ["no run was scored"]


def write_report(client: MlflowClient, parent_run_id: str, folder: Path) -> list[Path]:
    """report.html (self-contained) and report.md with its PNG figures, in ``folder``."""
    from ganbench.study import render

    data = collect(client, parent_run_id)
    folder.mkdir(parents=True, exist_ok=True)
    figures = render.figures(client, data, folder)
    html = render.html(data, figures)
    md = render.markdown(data, figures)
    out = [*figures.values()]
    for name, text in (("report.html", html), ("report.md", md)):
        path = folder / name
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
        out.append(path)
    return out


def fmt(value: float | None, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:.0f}"
