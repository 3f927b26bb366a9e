"""A claim's results beside the paper's numbers: one row per probe, what each row can
and cannot say, and the report (``report.json``, ``report.md``, the figure).

Values are shown in the paper's own metric (accuracy, or error rate = 1 - accuracy) and
in percent. A stand-in row shows the paper's number for orientation and never compares
it. A paper row says whether the paper's number lies inside ganbench's 95% t interval of
the mean over the draws; with every label there is one fit and no interval, and the row
says so. Every row states its budget: steps, real images seen, labels, draws.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ganbench.claims.recipe import ProbeSpec, Recipe
from ganbench.claims.state import ClaimFolder
from ganbench.files.sealed import write_atomic

HEADER = (
    "probe",
    "paper",
    "ganbench trained D: mean +- spread [95% interval of the mean]",
    "random-init D",
    "trained - random (accuracy points) [95%]",
    "what it is",
)


@dataclass(frozen=True)
class Row:
    probe: ProbeSpec
    done: dict[str, Any]  # the claim folder's entry: the probe's record and its seconds
    params: dict[str, str]
    stand_in: bool
    #: The paired t test's p-value, Holm-adjusted over the claim's rows (NaN: no test).
    holm_p: float = math.nan

    @property
    def record(self) -> dict[str, Any]:
        return self.done["record"]

    @property
    def results(self) -> dict[str, Any]:
        return self.record["results"]

    @property
    def metric(self) -> str:
        return self.probe.paper_metric or "accuracy"

    def shown(self, accuracy: float) -> float:
        """An accuracy in the row's metric."""
        return accuracy if self.metric == "accuracy" else 1.0 - accuracy

    def interval(self, which: str) -> tuple[float, float]:
        low, high = self.results[which]["mean_interval"]
        if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
            return math.nan, math.nan
        a, b = self.shown(low), self.shown(high)
        return min(a, b), max(a, b)

    @property
    def draws(self) -> int:
        return len(self.results["trained"]["accuracies"])

    @property
    def step(self) -> int:
        return int(self.record["step"])

    @property
    def images_seen(self) -> int | None:
        try:
            per_step = int(self.params["batch_size"]) * int(
                self.params.get("real_batches_per_step", 1)
            )
        except (KeyError, ValueError):
            return None
        return self.step * per_step

    def budget(self) -> str:
        seen = self.images_seen
        parts = [f"{self.step:,} steps"]
        if seen is not None:
            epochs = ""
            if self.params.get("num_images", "").isdigit():
                n = int(self.params["num_images"])
                epochs = f" ({seen / n:.1f} epochs of {n:,})"
            parts.append(f"{seen:,} images seen{epochs}")
        labels = self.results["trained"]["labels_used"]
        parts += [f"{labels:,} labels", f"{self.draws} draw(s)"]
        return ", ".join(parts)

    def verdict(self) -> str:
        if self.stand_in:
            return f"stand-in ({self.probe.dataset}): not comparable"
        value = self.probe.paper_value
        if value is None:
            return "no paper value to compare"
        mean = self.shown(self.results["trained"]["accuracy"])
        low, high = self.interval("trained")
        diff = 100 * (mean - value)
        if math.isnan(low):
            return (
                f"one fit ({self.draws} draw), no interval: ganbench {diff:+.2f} points from"
                " the paper's"
            )
        where = "inside" if low <= value <= high else "outside"
        return f"paper's {pct(value)} {where} ganbench's interval of the mean ({diff:+.2f} points)"

    def cells(self) -> tuple[str, ...]:
        paper = "-"
        if self.probe.paper_value is not None:
            spread = f" +-{100 * self.probe.paper_spread:.2f}" if self.probe.paper_spread else ""
            paper = f"{pct(self.probe.paper_value)}{spread}"
            paper += " (orientation)" if self.stand_in else ""
        paired = self.results.get("paired")
        diff = "-"
        if paired:
            interval = span(paired["low"], paired["high"], sign=True)
            diff = f"{100 * paired['difference']:+.2f}{interval}"
            diff += f" p_Holm={self.holm_p:.2g}" if math.isfinite(self.holm_p) else ""
        random = self.results.get("random_init")
        return (
            f"{self.probe.name} ({self.probe.dataset}, {self.metric.replace('_', ' ')})",
            paper,
            self.summary("trained"),
            self.summary("random_init") if random else "-",
            diff,
            f"{self.verdict()}; {self.budget()}",
        )

    def summary(self, which: str) -> str:
        r = self.results[which]
        low, high = self.interval(which)
        spread = f" +-{100 * r['spread']:.2f}" if len(r["accuracies"]) > 1 else " (one fit)"
        return f"{pct(self.shown(r['accuracy']))}{spread}{span(low, high)}"

    def as_dict(self) -> dict[str, Any]:
        p = self.probe
        return {
            "name": p.name,
            "dataset": p.dataset,
            "options": p.options,
            "command": p.command(),
            "note": p.note,
            "paper_metric": p.paper_metric,
            "paper_value": p.paper_value,
            "paper_spread": p.paper_spread,
            "metric": self.metric,
            "trained": self.results["trained"],
            "random_init": self.results.get("random_init"),
            "paired": self.results.get("paired"),
            "step": self.step,
            "images_seen": self.images_seen,
            "draws": self.draws,
            "verdict": self.verdict(),
            "paired_p_holm": None if math.isnan(self.holm_p) else self.holm_p,
            "budget": self.budget(),
            "record_path": self.done["record_path"],
            "seconds": self.done["seconds"],
        }


def pct(value: float) -> str:
    return f"{100 * value:.2f}%"


def span(low: Any, high: Any, *, sign: bool = False) -> str:
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return ""
    f = "+.2f" if sign else ".2f"
    return f" [{100 * low:{f}}, {100 * high:{f}}]"


def rows(recipe: Recipe, folder: ClaimFolder) -> list[Row]:
    """One row per probe; the trained-vs-random t tests of the rows Holm-adjusted together
    (the claim makes one comparison per row: a family of them)."""
    from ganbench.study.stats import holm

    t = folder.state["training"]
    params = t.get("params", {})
    found = [Row(p, folder.state["probes"][p.name], params, recipe.stand_in) for p in recipe.probes]
    p_values = [(r.results.get("paired") or {}).get("t_pvalue") for r in found]
    tested = [i for i, p in enumerate(p_values) if p is not None and math.isfinite(p)]
    adjusted = holm([p_values[i] for i in tested]) if tested else []
    for i, p in zip(tested, adjusted, strict=True):
        found[i] = replace(found[i], holm_p=float(p))
    return found


def table(found: list[Row]) -> list[str]:
    """The rows as aligned text lines (the last column runs on)."""
    cells = [HEADER, *(r.cells() for r in found)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADER) - 1)]
    return [
        "  ".join([*(c.ljust(w) for c, w in zip(r, widths, strict=False)), r[-1]]) for r in cells
    ]


def report_data(recipe: Recipe, folder: ClaimFolder, found: list[Row]) -> dict[str, Any]:
    t = folder.state["training"]
    return {
        "claim": recipe.name,
        "title": recipe.title,
        "setting": recipe.setting,
        "stands_in_for": recipe.stands_in_for,
        "paper": {"citation": recipe.citation, "table": recipe.table},
        "claim_text": recipe.claim,
        "status": recipe.status,
        "needs": recipe.needs,
        "recipe": recipe.source,
        "tracking_uri": folder.state["tracking_uri"],
        "training": {
            "run_id": t["run_id"],
            "given_with_run": bool(t.get("given")),
            "run_dir": t.get("run_dir"),
            "command": recipe.train.command(),
            "note": recipe.train.note,
            "seconds_measured": t.get("seconds"),
            "params": t.get("params", {}),
            "differs_from_recipe": t.get("differs", {}),
        },
        "probes": [r.as_dict() for r in found],
    }


def write_report(recipe: Recipe, folder: ClaimFolder) -> tuple[list[Row], dict[str, Path]]:
    """report.json, report.md and claim.png in the claim folder."""
    from ganbench.claims.figure import draw

    found = rows(recipe, folder)
    data = report_data(recipe, folder, found)
    out = {
        "json": folder.path / "report.json",
        "markdown": folder.path / "report.md",
        "figure": folder.path / "claim.png",
    }
    write_atomic(out["json"], json.dumps(data, indent=1, sort_keys=True) + "\n")
    draw(recipe, found, out["figure"])
    write_atomic(out["markdown"], markdown(recipe, data, found))
    return found, out


def markdown(recipe: Recipe, data: dict[str, Any], found: list[Row]) -> str:
    t = data["training"]
    lines = [f"# Claim {recipe.name}: {recipe.title}", ""]
    if recipe.stand_in:
        lines += [
            f"> **Stand-in for `{recipe.stands_in_for}`, not a reproduction.** It runs the"
            f" same protocol on {', '.join(sorted({p.dataset for p in recipe.probes}))} at a"
            " budget this machine allows. The paper's numbers are shown for orientation"
            " only: they were measured on another dataset, with another network and budget,"
            " and are not compared.",
            "",
        ]
    lines += [
        f"**Paper:** {recipe.citation}, {recipe.table}.  ",
        f"**Claim:** {recipe.claim}  ",
        f"**Status of this recipe:** {recipe.status}",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
        *("| " + " | ".join(r.cells()) + " |" for r in found),
        "",
        "Spread: 1.96 standard deviations of single draws (the authors' +-); interval: the"
        " 95% t interval of the mean over the draws; trained - random: the paired"
        " difference on the same draws, its 95% t interval (unadjusted) and the paired t"
        " test's p-value Holm-adjusted over this claim's rows. One training run (seed"
        f" {recipe.train.seed}): the intervals cover draws of labels, not training seeds.",
        "",
        "![The paper's number beside ganbench's](claim.png)",
        "",
        "## What was run",
        "",
    ]
    how = "given with --run (not trained by this claim)" if t["given_with_run"] else "trained"
    secs = t["seconds_measured"]
    wall = f", {secs:,.0f} s of training wall time measured" if secs else ""
    lines += [
        f"- Training ({how}): `{t['command']}`: MLflow run `{t['run_id']}` in"
        f" `{data['tracking_uri']}`{wall}.",
    ]
    if t["differs_from_recipe"]:
        said = ", ".join(f"{k} {a} (recipe {b})" for k, (a, b) in t["differs_from_recipe"].items())
        lines.append(f"- The run differs from the recipe's training: {said}.")
    for r in found:
        lines.append(
            f"- Probe {r.probe.name}: `{r.probe.command()}` ({r.done['seconds']:,.0f} s);"
            f" record `{r.done['record_path']}`."
        )
    notes = [f"- Training: {recipe.train.note}"] if recipe.train.note else []
    notes += [f"- Probe {p.name}: {p.note}" for p in recipe.probes if p.note]
    lines += ["", "## Notes", "", *notes] if notes else []
    n = recipe.needs
    lines += [
        "",
        "## What it needs",
        "",
        f"- Datasets: {', '.join(n['datasets'])}",
        f"- Hardware: {n['hardware']}",
        f"- Time ({n['time_basis']}): {n['time']}",
        "",
    ]
    return "\n".join(lines)
