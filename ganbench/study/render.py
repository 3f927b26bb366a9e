"""The report's two pages: HTML with every figure inlined as base64 (it opens offline and
carries no CDN link) and Markdown beside the PNGs (ganbench.study.figures draws them),
written by :func:`write_report` from the numbers ganbench.study.report collects."""

from __future__ import annotations

import base64
import html as htmllib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ganbench.files.sealed import write_atomic
from ganbench.study.figures import name, over
from ganbench.study.report import LAST_EVALS, Row, StudyReport, budget_text, collect, fmt

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from ganbench.study.stats import Spread

__all__ = ["figures", "html", "markdown", "write_report"]

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


def write_report(client: MlflowClient, parent_run_id: str, folder: Path) -> list[Path]:
    """report.html (self-contained) and report.md with its PNG figures, in ``folder``."""
    data = collect(client, parent_run_id)
    folder.mkdir(parents=True, exist_ok=True)
    figs = figures(client, data, folder)
    out = [*figs.values()]
    for page, text in (("report.html", html(data, figs)),
                       ("report.md", markdown(data, figs))):  # fmt: skip
        write_atomic(folder / page, text.encode())
        out.append(folder / page)
    return out


def figures(client: MlflowClient, data: StudyReport, folder: Path) -> dict[str, Path]:
    from ganbench.study import figures as drawing

    return {k: v for k, v in drawing.figures(client, data, folder).items() if v is not None}


# ---- the tables ---------------------------------------------------------------------------
Column = tuple[str, Callable[[StudyReport, Row], str]]


def _spread(s: Spread | None) -> str:
    if s is None:
        return "-"
    return f"{fmt(s.mean)} ± {fmt(s.std)} (min {fmt(s.min)})"


def _runs(data: StudyReport, row: Row) -> str:
    if data.search:
        text = f"{len(row.scored)} settings"
    else:
        text = "seeds " + ", ".join(str(r.seed) for r in row.scored) if row.scored else "none"
    if row.diverged:
        text += "; diverged: " + ", ".join(
            f"seed {r.seed} @ {r.diverged_step}" for r in row.diverged
        )
    if row.crashed:
        text += f"; {len(row.crashed)} crashed (not scored)"
    return text


def _kid(data: StudyReport, row: Row) -> str:
    kid = row.spread("kid")
    if kid is None:
        return "-"
    within = row.spread("kid_std")
    return f"{fmt(kid.mean)} ± {fmt(kid.std)}" + (
        f" (subset std {fmt(within.mean)})" if within else ""
    )


def _objective(data: StudyReport, row: Row) -> str:
    return _spread(row.spread("objective"))


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _columns(data: StudyReport) -> list[Column]:
    objective, other = ("final", "best") if data.objective == "final" else ("best", "final")
    columns: list[Column] = [
        ("cell" if data.several_datasets else "variant", name),
        ("runs" if data.search else "seeds scored", _runs),
        (f"{objective} FID (objective): mean ± std (min)", _objective),
        (f"{other} FID: mean ± std (min)", lambda d, r: _spread(r.spread(f"{other}_fid"))),
        ("KID: mean ± std over runs", _kid),
        ("precision", lambda d, r: _spread(r.spread("precision"))),
        ("recall", lambda d, r: _spread(r.spread("recall"))),
        ("IS", lambda d, r: _spread(r.spread("final_is"))),
        ("class accuracy", lambda d, r: _spread(r.spread("class_accuracy"))),
        ("intra-FID", lambda d, r: _spread(r.spread("intra_fid"))),
        (f"FID spread over the last {LAST_EVALS} evals", lambda d, r: fmt(r.stability)),
        ("diverged", lambda d, r: _rate(r.divergence_rate)),
        (f"FID at {d_images(data)} real images", lambda d, r: fmt(r.at_equal_images)),
        (f"FID at {fmt(data.equal_seconds)} s", lambda d, r: fmt(r.at_equal_seconds)),
        ("wall time", lambda d, r: fmt(r.wall_seconds) + (" s" if r.wall_seconds else "")),
        ("images/s", lambda d, r: fmt(r.images_per_sec)),
    ]  # fmt: skip
    if data.search:
        columns.insert(4, ("setting with the best objective", _best_setting))
    # A score no run was scored with is no column.
    return [c for c in columns if any(c[1](data, r) != "-" for r in data.rows)]


def d_images(data: StudyReport) -> str:
    return f"{data.equal_images:,}" if data.equal_images else "-"


def _best_setting(data: StudyReport, row: Row) -> str:
    return ", ".join(f"{k} {_short(v)}" for k, v in row.best_setting.items()) or "-"


def table(data: StudyReport) -> tuple[list[str], list[list[str]]]:
    columns = _columns(data)
    return [h for h, _ in columns], [[get(data, row) for _, get in columns] for row in data.rows]


COMPARISON_HEADERS = [
    "variant vs baseline",
    "runs (variant, baseline)",
    "Δ mean, finished runs [95% Welch interval]",
    "P(variant run better)",
    "test",
    "p",
    "p adjusted",
    "verdict",
]


def comparisons(data: StudyReport) -> list[list[str]]:
    out = []
    for row in data.rows:
        c = row.comparison
        if c is None:
            continue
        d = c.difference
        delta = "-"
        if d is not None:
            interval = f"[{fmt(d.low)}, {fmt(d.high)}]" if d.n_variant > 1 else "(one run)"
            delta = f"{d.estimate:+.3g} {interval}"
        out.append([
            name(data, row), f"{c.n_variant}, {c.n_baseline}", delta,
            fmt(c.superiority, 2), c.test or "-", fmt(c.p_value, 2), fmt(c.p_adjusted, 2),
            c.verdict(f"{row.budget_text.split(' (')[0]}"),
        ])  # fmt: skip
    return out


def budgets(data: StudyReport) -> list[str]:
    """One line per distinct budget, naming the cells that share it."""
    seen: dict[str, list[str]] = {}
    for row in data.rows:
        seen.setdefault(budget_text(row.runs), []).append(name(data, row))
    return [f"{text}: {', '.join(cells)}" for text, cells in seen.items()]


def crashed(data: StudyReport) -> list[str]:
    return [
        f"{name(data, row)}, seed {r.seed}: run {r.run_id} ended {r.status}"
        for row in data.rows
        for r in row.crashed + row.unfinished
    ]


BUDGET_HEADERS = ["variant", "settings (N)", "diverged", "k", "E[min FID]", "5%..95%"]


def _budget_rows(data: StudyReport) -> list[list[str]]:
    """A few budgets per variant: 1, 2, 5, 10, 20, 50, ... and N."""
    rows = []
    for row in data.rows:
        n = len(row.budget)
        if not n:
            continue
        ks = sorted({k for k in (1, 2, 5, 10, 20, 50, 100, 200, 500) if k < n} | {n})
        for k in ks:
            p = row.budget[k - 1]
            rows.append(
                [name(data, row), str(n), str(len(row.diverged)), str(k), fmt(p.expected),
                 f"{fmt(p.low)}..{fmt(p.high)}"]
            )  # fmt: skip
    return rows


def _short(value: str) -> str:
    """A logged hyperparameter, 4 significant digits where it is a number."""
    try:
        number = float(value)
    except ValueError:
        return value
    return value if number.is_integer() and "." not in value else f"{number:.4g}"


# ---- the words -------------------------------------------------------------------------
SEARCH_NOTE = (
    "Each row's runs are N hyperparameter settings sampled from its ranges, each with its"
    " own seed, not seeds of one setting: their spread is the search's, so no test against"
    " the baseline is drawn. The budget curve below is the comparison."
)


def grid_note(data: StudyReport) -> str:
    return (
        f"Each variant against {data.baseline} on the same dataset, by the {data.objective}"
        " FID of each run. Δ is the difference of the mean of the runs that finished, with"
        " its 95% Welch t interval; P(variant run better) counts a diverged run as the worst"
        " (ties half). The test is Welch's t where no run of the pair diverged, else the"
        " Mann-Whitney U test with diverged runs ranked last; the p-values of every row form"
        f" one family, adjusted by {data.correction.capitalize()}'s method, and a verdict"
        f" needs an adjusted p below 0.05 and at least {data.min_seeds} runs a side. A"
        " verdict says what was observed at this budget on this dataset; a paper's claim"
        " is tested only in the paper's setting."
    )


BUDGET_NOTE = (
    "As Lucic et al.'s Figs. 4-5 (arXiv 1711.10337): each sampled hyperparameter setting's"
    " objective (a diverged one counts as infinite); for a budget of k settings, the mean"
    " and the 5%..95% quantiles of the minimum over all k-subsets of the N trained ones"
    " (exact, ganbench/study/budget.py)."
)
VIEWS_NOTE = (
    "Equal real images: each run's last FID scored before it had seen as many real images"
    " as the run that saw the fewest (a step of a critic trained n times takes n batches)."
    " Equal wall-clock: its last FID scored within the shortest run's time to its last"
    " score. Both are means over the finished runs."
)


def _samples_of(data: StudyReport) -> str:
    return "the setting with the best objective" if data.search else "first finished seed"


# ---- the pages -----------------------------------------------------------------------------
def _img(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def _html_table(heads: list[str], rows: list[list[str]], ident: str, verdict: int = -1) -> str:
    e = htmllib.escape
    head = "".join(f"<th class='l'>{e(h)}</th>" if i == 0 else f"<th>{e(h)}</th>"
                   for i, h in enumerate(heads))  # fmt: skip
    body = []
    for cells in rows:
        tds = [f"<td class='l'>{e(cells[0])}</td>"]
        for i, cell in enumerate(cells[1:], 1):
            cls = ""
            if i == verdict:
                cls = {"better:": "better", "worse:": "worse"}.get(cell.split(" ")[0], "same")
            tds.append(f"<td class='{cls}'>{e(cell)}</td>" if cls else f"<td>{e(cell)}</td>")
        body.append(f"<tr>{''.join(tds)}</tr>")
    return (
        f"<table id='{ident}'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def html(data: StudyReport, figs: dict[str, Path]) -> str:
    e = htmllib.escape
    heads, cells = table(data)
    claims = "".join(
        f"<tr><td class='l'>{e(r.variant)}</td><td class='l'>{e(r.claim)}</td></tr>"
        for r in {row.variant: row for row in data.rows}.values()
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
    budget_lines = "".join(f"<li>{e(line)}</li>" for line in budgets(data))
    lost = "".join(f"<li>{e(line)}</li>" for line in crashed(data)) or "<li>none</li>"
    tests = ""
    if not data.search:
        tests = (
            "<h2>Comparisons with the baseline</h2>"
            + _html_table(COMPARISON_HEADERS, comparisons(data), "comparisons", verdict=7)
            + f"<p>{e(grid_note(data))}</p>"
        )
    budget = ""
    if data.search:
        budget = (
            "<h2>Best FID for a budget of k sampled settings</h2>"
            + _html_table(BUDGET_HEADERS, _budget_rows(data), "budget")
            + f"<p>{e(BUDGET_NOTE)}</p>"
        )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>study {e(data.name)}</title>
<style>{_CSS}</style><script>{_CHECK}</script></head>
<body>
<h1>Study <code>{e(data.name)}</code></h1>
<p>{e(data.summary)}</p>
<p>Parent run <code>{e(data.parent_run_id)}</code>; datasets {e(", ".join(data.datasets))};
baseline <code>{e(data.baseline or "-")}</code>; objective: the {e(data.objective)} FID.</p>
<h2>Budget of each run</h2><ul>{budget_lines}</ul>
<h2>Results (mean over {e(over(data))})</h2>
{_html_table(heads, cells, "variants")}
{f"<p>{e(SEARCH_NOTE)}</p>" if data.search else ""}<p>{e(VIEWS_NOTE)}</p>
{tests}{budget}
<h2>Runs without a result</h2><ul>{lost}</ul>
<h2>Figures</h2>{plots}
<h2>Final samples ({e(_samples_of(data))})</h2><div class="grids">{grids}</div>
<h2>What each variant tests</h2><table id="claims"><tbody>{claims}</tbody></table>
<h2>Scoring protocol</h2><ul>{protocol}</ul>
</body></html>
"""


def _md_table(heads: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)] + [
        "| " + " | ".join(cells) + " |" for cells in rows
    ]


def markdown(data: StudyReport, figs: dict[str, Path]) -> str:
    lines = [f"# Study `{data.name}`", "", data.summary, ""]
    lines += [
        f"Parent run `{data.parent_run_id}`; baseline `{data.baseline}`; objective: the"
        f" {data.objective} FID.",
        "",
        "## Budget of each run",
        "",
    ]
    lines += [f"- {line}" for line in budgets(data)]
    heads, cells = table(data)
    lines += ["", f"## Results (mean over {over(data)})", "", *_md_table(heads, cells), ""]
    lines += ([SEARCH_NOTE, ""] if data.search else []) + [VIEWS_NOTE, ""]
    if not data.search:
        lines += ["## Comparisons with the baseline", ""]
        lines += [*_md_table(COMPARISON_HEADERS, comparisons(data)), "", grid_note(data), ""]
    else:
        lines += ["## Best FID for a budget of k sampled settings", ""]
        lines += [*_md_table(BUDGET_HEADERS, _budget_rows(data)), "", BUDGET_NOTE, ""]
    lines += ["## Runs without a result", ""] + [f"- {x}" for x in crashed(data) or ["none"]]
    lines += [""] + [f"![{k}]({p.name})" for k, p in figs.items() if not k.startswith("samples:")]
    lines += ["", f"## Final samples ({_samples_of(data)})", ""]
    lines += [f"![{k}]({p.name})" for k, p in figs.items() if k.startswith("samples:")]
    lines += ["", "## Scoring protocol", ""] + [f"- {line}" for line in data.protocol]
    return "\n".join(lines) + "\n"
