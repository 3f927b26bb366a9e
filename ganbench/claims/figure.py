"""``claim.png``: per probe, the paper's number beside ganbench's trained and random-init
discriminators (thick bar: the 95% interval of the mean; thin bar: the authors' spread
of single draws). A stand-in's paper numbers are drawn hollow and grey: orientation
only, measured in another setting."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from ganbench.claims.recipe import Recipe
from ganbench.files.sealed import atomic_path

if TYPE_CHECKING:
    from ganbench.claims.results import Row


def draw(recipe: Recipe, rows: list[Row], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 0.9 * len(rows) + 1.8))
    labelled: set[str] = set()

    def label(text: str) -> str | None:
        if text in labelled:
            return None
        labelled.add(text)
        return text

    for i, row in enumerate(rows):
        for which, offset, color, marker, name in (
            ("trained", -0.12, "C0", "o", "ganbench, trained D"),
            ("random_init", 0.12, "C1", "s", "ganbench, random-init D"),
        ):
            result = row.results.get(which)
            if not result:
                continue
            mean = 100 * row.shown(result["accuracy"])
            spread = 100 * result["spread"]
            y = i + offset
            ax.plot([mean - spread, mean + spread], [y, y], color=color, lw=1)
            low, high = row.interval(which)
            if not math.isnan(low):
                ax.plot([100 * low, 100 * high], [y, y], color=color, lw=4, alpha=0.6)
            ax.plot([mean], [y], marker, color=color, label=label(name))
        value = row.probe.paper_value
        if value is not None:
            spread = 100 * (row.probe.paper_spread or 0.0)
            if row.stand_in:
                style = {"mfc": "none", "color": "0.5"}
                name = "paper, in its own setting (orientation only)"
            else:
                style, name = {"color": "k"}, "paper"
            if spread:
                ax.plot([100 * value - spread, 100 * value + spread], [i, i], lw=1, **_line(style))
            ax.plot([100 * value], [i], "*", ms=12, label=label(name), **style)
    ax.set_yticks(
        range(len(rows)),
        [f"{r.probe.name}\n({r.probe.dataset}, {r.metric.replace('_', ' ')})" for r in rows],
    )
    ax.set_ylim(len(rows) - 0.5, -0.5)  # the first row on top
    ax.set_xlabel(
        "percent, in each row's metric (as the paper reports it)\nthick bar: 95% interval"
        " of the mean; thin bar: spread (1.96 sd of single draws)"
    )
    kind = f"stand-in for {recipe.stands_in_for}" if recipe.stand_in else "the paper's setting"
    ax.set_title(f"{recipe.name}: {recipe.table} ({kind})", fontsize=10)
    ax.grid(alpha=0.3, axis="x")
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path


def _line(style: dict) -> dict:
    return {"color": style["color"]}
