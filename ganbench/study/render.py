"""The report's figures (matplotlib PNGs) and its two pages: HTML with every figure inlined
as base64 (it opens offline and carries no CDN link) and Markdown beside the PNGs."""

from __future__ import annotations

import base64
import html as htmllib
import math
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ganbench.study.report import StudyReport, VariantRow, fmt

if TYPE_CHECKING:
    from mlflow import MlflowClient

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f2f2f2}td.l,th.l{text-align:left}
.worse{color:#b00}.better{color:#070}.same{color:#666}
figure{display:inline-block;margin:0.5em;text-align:center}
figure img{max-width:100%}.grids img{width:220px;image-rendering:pixelated}
code{background:#f5f5f5;padding:1px 3px}
"""

# Counts what rendered, for people and for the test that opens the page in Chromium.
_CHECK = """
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  var rows = document.querySelectorAll('table tbody tr').length;
  document.body.setAttribute('data-images', ok + '/' + imgs.length);
  document.body.setAttribute('data-table-rows', String(rows));
});
"""


def figures(client: MlflowClient, data: StudyReport, folder: Path) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    out = {}
    out["fid_vs_step"] = _fid_band(data, folder / "fid_vs_step.png")
    out["curves"] = _curves(data, folder / "curves.png")
    out["differences"] = _forest(data, folder / "differences.png")
    if data.search:
        out["budget"] = _budget(data, folder / "budget.png")
    for row in data.rows:
        path = _grid(client, row, folder / f"samples_{_slug(row.name)}.png", data.search)
        if path is not None:
            out[f"samples:{row.name}"] = path
    return {k: v for k, v in out.items() if v is not None}


def _fid_band(data: StudyReport, path: Path) -> Path | None:
    import matplotlib.pyplot as plt

    if not data.fid_name:
        return None
    fig, ax = plt.subplots(figsize=(9, 5))
    for row in data.rows:
        steps, mean, low, high = _band([r.fid for r in row.scored])
        if steps.size == 0:
            continue
        (line,) = ax.plot(
            steps, mean, marker="o", ms=3, label=f"{_name(data, row)} (n={len(row.scored)})"
        )
        ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.15)
    ax.set_xlabel("step")
    ax.set_ylabel(data.fid_name)
    ax.set_title(f"FID over training: mean over {_over(data)}, band = min..max")
    ax.legend(fontsize=8, ncol=2)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _over(data: StudyReport) -> str:
    """What a variant's runs are: seeds of one setting, or a search's sampled settings."""
    return "sampled settings" if data.search else "seeds"


def _band(series: list[list[tuple[int, float]]]) -> tuple[np.ndarray, ...]:
    """Mean, min and max over runs at the steps every run has."""
    if not series:
        return (np.array([]),) * 4
    common = sorted(set.intersection(*(set(s for s, _ in run) for run in series)))
    values = np.array([[dict(run)[s] for s in common] for run in series], dtype=np.float64)
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
    groups: dict[str, list[VariantRow]] = {}
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
            steps, mean, _, _ = _band([r.history[key] for r in row.runs if r.history.get(key)])
            if steps.size:
                ax.plot(steps, mean, lw=1, label=row.name)
                drawn = True
        ax.set_title(f"{title} (mean over {_over(data)})", fontsize=9 if len(groups) > 1 else 12)
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
    return _save(fig, path)


def _forest(data: StudyReport, path: Path) -> Path | None:
    import matplotlib.pyplot as plt

    rows = [r for r in data.rows if r.difference is not None]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.2))
    for i, row in enumerate(rows):
        d = row.difference
        assert d is not None
        low = d.low if math.isfinite(d.low) else d.estimate
        high = d.high if math.isfinite(d.high) else d.estimate
        color = "#666" if not d.distinguishable else ("#070" if d.estimate < 0 else "#b00")
        ax.plot([low, high], [i, i], color=color, lw=2)
        ax.plot([d.estimate], [i], "o", color=color)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(range(len(rows)), [_name(data, r) for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel(f"final {data.fid_name} minus {data.baseline}'s (95% Welch interval)")
    ax.grid(alpha=0.3, axis="x")
    return _save(fig, path)


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
        (line,) = ax.plot(
            ks, [p.expected for p in points], marker="o", ms=3, label=_name(data, row)
        )
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
    ax.set_ylabel(f"min final {data.fid_name or 'FID'} over k settings")
    ax.set_title("Best FID for a budget: mean over k-subsets, band = 5%..95% (log scale)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


BUDGET_HEADERS = ["variant", "settings (N)", "diverged", "k", "E[min FID]", "5%..95%"]


def _budget_rows(data: StudyReport) -> list[list[str]]:
    """A few budgets per variant: 1, 2, 5, 10, 20, 50, ... and N."""
    rows = []
    for row in data.rows:
        n = len(row.budget)
        if not n:
            continue
        ks = sorted({k for k in (1, 2, 5, 10, 20, 50, 100, 200, 500) if k < n} | {n})
        diverged = str(len(row.diverged))
        for k in ks:
            p = row.budget[k - 1]
            rows.append(
                [_name(data, row), str(n), diverged, str(k), fmt(p.expected),
                 f"{fmt(p.low)}..{fmt(p.high)}"]
            )  # fmt: skip
    return rows


def _name(data: StudyReport, row: VariantRow) -> str:
    return row.label if data.mixed_architectures else row.name


def _grid(client: MlflowClient, row: VariantRow, path: Path, best: bool) -> Path | None:
    """The final sample grid of the variant's first seed that finished or, in a search
    (``best``), of its setting with the lowest final FID: the one the table names."""
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


def _samples_of(data: StudyReport) -> str:
    return "the setting with the lowest final FID" if data.search else "first finished seed"


def _save(fig: object, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()  # type: ignore[attr-defined]
    fig.savefig(path, dpi=100)  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[arg-type]
    return path


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _spread(s: object) -> str:
    if s is None:
        return "-"
    return f"{fmt(s.mean)} ± {fmt(s.std)} (min {fmt(s.min)})"  # type: ignore[attr-defined]


def _verdict(row: VariantRow, baseline: str | None) -> tuple[str, str, str]:
    """(difference text, interval text, verdict) for the table."""
    if row.name == baseline:
        return "baseline", "", ""
    d = row.difference
    if d is None:
        return "-", "-", "no scored seeds"
    interval = f"[{fmt(d.low)}, {fmt(d.high)}]" if math.isfinite(d.low) else "(one seed)"
    return f"{d.estimate:+.3g}", interval, d.verdict()


def _table_rows(data: StudyReport) -> list[list[str]]:
    """The variants table's cells, in the order of ``headers(data)``."""
    rows = []
    for row in data.rows:
        diverged = ", ".join(f"seed {s} @ {st}" for s, st in row.diverged) or "0"
        if data.search:
            # A search's runs are sampled settings: how many, and the one that won.
            cells = [
                _name(data, row),
                str(len(row.runs)),
                _spread(row.final_fid),
                _spread(row.best_fid),
                _spread(row.final_is),
                ", ".join(f"{k} {_short(v)}" for k, v in row.best_setting.items()) or "-",
                str(len(row.diverged)),
            ]
        else:
            diff, interval, verdict = _verdict(row, data.baseline)
            cells = [
                _name(data, row),
                ", ".join(str(r.seed) for r in row.runs),
                _spread(row.final_fid),
                _spread(row.best_fid),
                _spread(row.final_is),
                diff,
                interval,
                verdict,
                diverged,
            ]
        cells += [
            fmt(row.wall_seconds, 3) + (" s" if row.wall_seconds else ""),
            fmt(row.images_per_sec, 3),
        ]
        rows.append(cells)
    return rows


def _short(value: str) -> str:
    """A logged hyperparameter, 4 significant digits where it is a number."""
    try:
        number = float(value)
    except ValueError:
        return value
    return value if number.is_integer() and "." not in value else f"{number:.4g}"


HEADERS = [
    "variant",
    "seeds",
    "final FID mean ± std (min)",
    "best FID mean ± std (min)",
    "final IS mean ± std (min)",
    "Δ final FID vs baseline",
    "95% interval",
    "verdict",
    "diverged",
    "wall time",
    "images/s",
]

SEARCH_HEADERS = [
    "variant",
    "settings (N)",
    "final FID over settings: mean ± std (min)",
    "best FID over settings: mean ± std (min)",
    "final IS over settings: mean ± std (min)",
    "setting with the lowest final FID",
    "diverged",
    "wall time",
    "images/s",
]

SEARCH_NOTE = (
    "Each row's runs are N hyperparameter settings sampled from its ranges, one seed each,"
    " not seeds of one setting: their spread is the search's, so no Welch test against the"
    " baseline is drawn. The budget curve below is the comparison."
)
GRID_NOTE = (
    "Δ is the variant's mean final FID minus the baseline's (lower FID is better), with a"
    " 95% Welch t interval over seeds: independent samples with unequal spreads, and the t"
    " distribution for so few seeds. Where the interval contains zero, the difference is"
    " not distinguishable with that many seeds."
)


def headers(data: StudyReport) -> list[str]:
    return SEARCH_HEADERS if data.search else HEADERS


def _img(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


BUDGET_NOTE = (
    "As Lucic et al.'s Figs. 4-5 (arXiv 1711.10337): each sampled hyperparameter setting's"
    " final FID (a diverged one counts as infinite); for a budget of k settings, the mean"
    " and the 5%..95% quantiles of the minimum over all k-subsets of the N trained ones"
    " (exact, ganbench/study/budget.py)."
)


def html(data: StudyReport, figs: dict[str, Path]) -> str:
    e = htmllib.escape
    head = "".join(
        f"<th class='l'>{e(h)}</th>" if i == 0 else f"<th>{e(h)}</th>"
        for i, h in enumerate(headers(data))
    )
    body = []
    for cells, row in zip(_table_rows(data), data.rows, strict=True):
        tds = [f"<td class='l'>{e(cells[0])}</td>"]
        for i, cell in enumerate(cells[1:], 1):
            if not data.search and i == 7:  # the verdict, coloured
                cls = {"better": "better", "worse": "worse"}.get(cell.split(" ")[0], "same")
                tds.append(f"<td class='{cls}'>{e(cell)}</td>")
            else:
                tds.append(f"<td>{e(cell)}</td>")
        body.append(f"<tr title='{e(row.claim)}'>{''.join(tds)}</tr>")
    claims = "".join(
        f"<tr><td class='l'>{e(r.name)}</td><td class='l'>{e(r.claim)}</td></tr>"
        for r in data.rows
        if r.claim
    )
    plots = "".join(
        f"<figure><img alt='{k}' src='{_img(p)}'><figcaption>{e(k)}</figcaption></figure>"
        for k, p in figs.items()
        if not k.startswith("samples:")
    )
    grids = "".join(
        f"<figure><img alt='{e(k[8:])}' src='{_img(p)}'>"
        f"<figcaption>{e(k[8:])}</figcaption></figure>"
        for k, p in figs.items()
        if k.startswith("samples:")
    )
    protocol = "".join(f"<li>{e(line)}</li>" for line in data.protocol)
    budget = ""
    if data.search:
        bhead = "".join(f"<th>{e(h)}</th>" for h in BUDGET_HEADERS)
        bbody = "".join(
            "<tr>" + "".join(f"<td>{e(c)}</td>" for c in cells) + "</tr>"
            for cells in _budget_rows(data)
        )
        budget = (
            f"<h2>Best FID for a budget of k sampled settings</h2>"
            f"<table id='budget'><thead><tr>{bhead}</tr></thead><tbody>{bbody}</tbody>"
            f"</table><p>{e(BUDGET_NOTE)}</p>"
        )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>study {e(data.name)}</title>
<style>{_CSS}</style><script>{_CHECK}</script></head>
<body>
<h1>Study <code>{e(data.name)}</code></h1>
<p>{e(data.summary)}</p>
<p>Parent run <code>{e(data.parent_run_id)}</code>; datasets {e(", ".join(data.datasets))};
baseline <code>{e(data.baseline or "-")}</code>.</p>
<h2>Variants</h2>
<table id="variants"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>
<p>{e(SEARCH_NOTE if data.search else GRID_NOTE)}</p>
{budget}
<h2>Figures</h2>{plots}
<h2>Final samples ({e(_samples_of(data))})</h2><div class="grids">{grids}</div>
<h2>What each variant tests</h2><table id="claims"><tbody>{claims}</tbody></table>
<h2>Scoring protocol</h2><ul>{protocol}</ul>
</body></html>
"""


def markdown(data: StudyReport, figs: dict[str, Path]) -> str:
    lines = [f"# Study `{data.name}`", "", data.summary, ""]
    lines += [f"Parent run `{data.parent_run_id}`; baseline `{data.baseline}`.", ""]
    heads = headers(data)
    lines += ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    lines += ["| " + " | ".join(cells) + " |" for cells in _table_rows(data)]
    lines += ["", SEARCH_NOTE if data.search else GRID_NOTE, ""]
    if data.search:
        lines += ["## Best FID for a budget of k sampled settings", ""]
        lines += ["| " + " | ".join(BUDGET_HEADERS) + " |", "|" + "---|" * len(BUDGET_HEADERS)]
        lines += ["| " + " | ".join(cells) + " |" for cells in _budget_rows(data)]
        lines += ["", BUDGET_NOTE, ""]
    lines += [f"![{k}]({p.name})" for k, p in figs.items() if not k.startswith("samples:")]
    lines += ["", f"## Final samples ({_samples_of(data)})", ""]
    lines += [f"![{k}]({p.name})" for k, p in figs.items() if k.startswith("samples:")]
    lines += ["", "## Scoring protocol", ""] + [f"- {line}" for line in data.protocol]
    return "\n".join(lines) + "\n"
