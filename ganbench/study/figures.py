"""The report's figures (matplotlib PNGs): FID over training at equal steps, equal real
images and equal wall-clock, the loss curves, the differences with their intervals, the
budget curve of a search, and each cell's final samples."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ganbench.study.report import Row, StudyReport

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from ganbench.study.results import RunSummary


def figures(client: MlflowClient, data: StudyReport, folder: Path) -> dict[str, Path | None]:
    import matplotlib

    matplotlib.use("Agg")
    out: dict[str, Path | None] = {}
    out["fid_vs_step"] = _fid_band(data, folder / "fid_vs_step.png", "step", _by_step)
    out["fid_vs_images"] = _fid_band(
        data, folder / "fid_vs_images.png", "real images seen", _by_images
    )
    out["fid_vs_seconds"] = _fid_band(
        data, folder / "fid_vs_seconds.png", "wall-clock seconds since the run started", _by_time
    )
    out["curves"] = _curves(data, folder / "curves.png")
    out["differences"] = _forest(data, folder / "differences.png")
    if data.search:
        out["budget"] = _budget(data, folder / "budget.png")
    for row in data.rows:
        path = _grid(client, row, folder / f"samples_{slug(name(data, row))}.png", data.search)
        if path is not None:
            out[f"samples:{name(data, row)}"] = path
    return out


def name(data: StudyReport, row: Row) -> str:
    """A row's label: the variant, its architecture where variants differ in it, and its
    dataset where the study has several."""
    text = row.label if data.mixed_architectures else row.variant
    return f"{text} / {row.dataset}" if data.several_datasets else text


def over(data: StudyReport) -> str:
    """What a variant's runs are: seeds of one setting, or a search's sampled settings."""
    return "sampled settings" if data.search else "seeds"


Series = list[tuple[float, float]]


def _by_step(run: RunSummary) -> Series:
    return [(float(s), v) for s, v in run.fid]


def _by_images(run: RunSummary) -> Series:
    return [(float(s * run.images_per_step), v) for s, v in run.fid]


def _by_time(run: RunSummary) -> Series:
    at = dict(run.fid_seconds)
    return [(at[s], v) for s, v in run.fid if s in at]


def _fid_band(
    data: StudyReport, path: Path, xlabel: str, x_of: Callable[[RunSummary], Series]
) -> Path | None:
    import matplotlib.pyplot as plt

    if not data.fid_name:
        return None
    fig, ax = plt.subplots(figsize=(9, 5))
    for row in data.rows:
        series = [x_of(r) for r in row.scored]
        if x_of is _by_time:  # no two runs are scored at the same second: each its own line
            for i, run in enumerate(series):
                if run:
                    xs, ys = zip(*run, strict=True)
                    ax.plot(xs, ys, lw=1, color=f"C{data.rows.index(row) % 10}",
                            label=f"{name(data, row)}" if i == 0 else None)  # fmt: skip
            continue
        steps, mean, low, high = band(series)
        if steps.size == 0:
            continue
        (line,) = ax.plot(
            steps, mean, marker="o", ms=3, label=f"{name(data, row)} (n={len(row.scored)})"
        )
        ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.15)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(data.fid_name)
    how = "one line per run" if x_of is _by_time else f"mean over {over(data)}, band = min..max"
    ax.set_title(f"FID against {xlabel.split(' since')[0]}: {how}", fontsize=11)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, ncol=2)
    ax.grid(alpha=0.3)
    return save(fig, path)


def band(series: list[Series]) -> tuple[np.ndarray, ...]:
    """Mean, min and max over runs at the x values every run has."""
    series = [s for s in series if s]
    if not series:
        return (np.array([]),) * 4
    common = sorted(set.intersection(*(set(x for x, _ in run) for run in series)))
    values = np.array([[dict(run)[x] for x in common] for run in series], dtype=np.float64)
    if values.size == 0:
        return (np.array([]),) * 4
    return np.array(common), values.mean(0), values.min(0), values.max(0)


def _curves(data: StudyReport, path: Path) -> Path | None:
    """D and G losses and D's outputs over training. Variants of one architecture share
    panels; where architectures differ each gets its own row of panels, because their
    losses and D outputs are different quantities (a Wasserstein critic's raw score next
    to DCGAN's probability would flatten one to a line)."""
    import matplotlib.pyplot as plt

    keys = [("loss_d", "D loss"), ("loss_g", "G loss"), ("d_real", "D(x)"), ("d_fake", "D(G(z))")]
    groups: dict[str, list[Row]] = {}
    for row in data.rows:
        groups.setdefault(row.architecture if data.mixed_architectures else "", []).append(row)
    if len(groups) == 1:
        fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True, squeeze=False)
        pairs = zip(axes.flat, keys, strict=True)
        panels = [(ax, key, title, data.rows) for ax, (key, title) in pairs]
        bottom = list(axes[1])
    else:
        fig, axes = plt.subplots(
            len(groups), 4, figsize=(15, 2.6 * len(groups) + 0.6), sharex=True, squeeze=False
        )
        panels = [
            (axes[i, j], key, f"{arch}: {title}", rows)
            for i, (arch, rows) in enumerate(groups.items())
            for j, (key, title) in enumerate(keys)
        ]
        bottom = list(axes[-1])
    drawn = False
    for ax, key, title, rows in panels:
        for row in rows:
            runs = [
                [(float(s), v) for s, v in r.history[key]] for r in row.runs if r.history.get(key)
            ]
            steps, mean, _, _ = band(runs)
            if steps.size:
                ax.plot(steps, mean, lw=1, label=name(data, row))
                drawn = True
        ax.set_title(f"{title} (mean over {over(data)})", fontsize=9 if len(groups) > 1 else 12)
        ax.grid(alpha=0.3)
    if not drawn:
        plt.close(fig)
        return None
    # a legend in each architecture's first panel (one architecture: the first panel only)
    for ax in axes[:, 0] if len(groups) > 1 else axes[:1, 0]:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, ncol=2)
    for ax in bottom:
        ax.set_xlabel("step")
    return save(fig, path)


def _forest(data: StudyReport, path: Path) -> Path | None:
    """Each comparison's Welch interval of the finished runs, coloured by its corrected
    verdict (grey: no difference observed, or too few seeds)."""
    import matplotlib.pyplot as plt

    rows = [r for r in data.rows if r.comparison is not None and r.comparison.difference]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.2))
    for i, row in enumerate(rows):
        c = row.comparison
        assert c is not None and c.difference is not None
        d = c.difference
        low = d.low if math.isfinite(d.low) else d.estimate
        high = d.high if math.isfinite(d.high) else d.estimate
        color = "#666" if not c.significant else ("#070" if c.better else "#b00")
        ax.plot([low, high], [i, i], color=color, lw=2)
        ax.plot([d.estimate], [i], "o", color=color)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(range(len(rows)), [name(data, r) for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel(
        f"{data.objective} {data.fid_name} minus {data.baseline}'s: 95% Welch interval of"
        f" the finished runs; colour = {data.correction}-corrected verdict"
    )
    ax.grid(alpha=0.3, axis="x")
    return save(fig, path)


def _budget(data: StudyReport, path: Path) -> Path | None:
    """Lucic et al.'s Figs. 4-5: the best FID expected from k sampled settings, per GAN."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    drawn = False
    for row in data.rows:
        points = [p for p in row.budget if math.isfinite(p.expected)]
        if not points:
            continue
        ks = [p.k for p in points]
        (line,) = ax.plot(ks, [p.expected for p in points], marker="o", ms=3, label=name(data, row))
        # An infinite quantile (all k draws may diverge) is drawn at the expectation.
        low = [p.low if math.isfinite(p.low) else p.expected for p in points]
        high = [p.high if math.isfinite(p.high) else p.expected for p in points]
        ax.fill_between(ks, low, high, color=line.get_color(), alpha=0.15)
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    from matplotlib.ticker import MaxNLocator, ScalarFormatter

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    # FID is positive and a search's spread covers decades (a failed draw scores 100+,
    # tuned ones single digits): on a log axis the large-k end stays readable.
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(ScalarFormatter())
    ax.tick_params(axis="y", which="minor", labelsize=7)
    ax.set_xlabel("budget: hyperparameter settings sampled (k)")
    ax.set_ylabel(f"min {data.objective} {data.fid_name or 'FID'} over k settings")
    ax.set_title("Best FID for a budget: mean over k-subsets, band = 5%..95% (log scale)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save(fig, path)


def _grid(client: MlflowClient, row: Row, path: Path, best: bool) -> Path | None:
    """The final sample grid of the cell's first seed that finished or, in a search
    (``best``), of its setting with the best objective: the one the table names."""
    runs = row.scored or row.runs
    if best and row.best is not None:
        runs = [row.best, *(r for r in runs if r is not row.best)]
    for run in runs:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                got = Path(client.download_artifacts(run.run_id, "samples_final.png", tmp))
            except Exception:
                continue
            path.write_bytes(got.read_bytes())
            return path
    return None


def save(fig: object, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()  # type: ignore[attr-defined]
    fig.savefig(path, dpi=100)  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[arg-type]
    return path


def slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)
