"""``ganbench claim list|show|run``: each of the paper's probe numbers as one command that
trains, probes and reports ganbench's number beside the paper's (:mod:`ganbench.claims`)."""

from __future__ import annotations

import functools
from pathlib import Path

import click

from ganbench.cli.data import data_options
from ganbench.cli.run_options import device_option, tracking_option


@click.group()
def claim() -> None:
    """The paper's numbers, each as one recipe: train, probe, compare with the paper."""


@claim.command(name="list")
def list_claims() -> None:
    """The built-in recipes: name, setting (paper or stand-in) and title."""
    from ganbench.claims.recipe import builtin_names, load

    recipes = [load(name) for name in builtin_names()]
    width = max(len(r.name) for r in recipes)
    for r in recipes:
        setting = f"stand-in for {r.stands_in_for}" if r.stand_in else "paper"
        click.echo(f"{r.name.ljust(width)}  {setting.ljust(30)}  {r.title}")


@claim.command()
@click.argument("ref", metavar="NAME|FILE")
def show(ref: str) -> None:
    """A recipe: the paper's number, what is trained and probed, and what it needs."""
    from ganbench.claims.recipe import load

    r = load(ref)
    lines = [f"{r.name}: {r.title}"]
    if r.stand_in:
        lines.append(
            f"  setting: stand-in for {r.stands_in_for}: the paper's numbers are shown for"
            " orientation only, never compared"
        )
    else:
        lines.append("  setting: the paper's")
    lines += [
        f"  paper: {r.citation}, {r.table}",
        f"  claim: {r.claim}",
        f"  status: {r.status}",
        f"  needs: datasets {', '.join(r.needs['datasets'])}; {r.needs['hardware']}",
        f"  time ({r.needs['time_basis']}): {r.needs['time']}",
        f"  train: {r.train.command()}",
    ]
    if r.train.note:
        lines.append(f"    note: {r.train.note}")
    for p in r.probes:
        paper = ""
        if p.paper_value is not None:
            spread = f" +- {100 * p.paper_spread:.2f}" if p.paper_spread else ""
            metric = (p.paper_metric or "").replace("_", " ")
            paper = f"  (paper: {metric} {100 * p.paper_value:.2f}%{spread})"
        lines.append(f"  probe {p.name}: {p.command()}{paper}")
        if p.note:
            lines.append(f"    note: {p.note}")
    lines.append(f"  run it: ganbench claim run {ref}")
    click.echo("\n".join(lines))


@claim.command(name="run")
@click.argument("ref", metavar="NAME|FILE")
@click.option("--run", "run_id", metavar="RUN_ID",
              help="Skip training: probe this finished run instead.")  # fmt: skip
@click.option("--out", type=click.Path(file_okay=False),
              help="The claim's folder: state, logs, run folder, report. [default:"
              " CACHE/claims/NAME]")  # fmt: skip
@device_option()
@tracking_option
@data_options
@click.option("--progress/--no-progress", default=True,
              help="Echo each step's log lines as they come.")  # fmt: skip
def run_claim(
    ref: str,
    run_id: str | None,
    out: str | None,
    device: str,
    tracking_uri: str | None,
    data_root: str | None,
    cache_dir: str | None,
    bad_images: str,
    progress: bool,
) -> None:
    """Train, probe and report one claim; run it again to continue where it stopped.

    \b
    Training is `ganbench run` (then `ganbench resume`) in its own process, each probe
    `ganbench probe`; the claim folder remembers the run and every finished probe, so a
    claim stopped by Ctrl-C, SIGTERM or kill -9 continues where it was, and a finished
    one only rewrites its report (report.md, report.json, claim.png). A missing dataset
    is refused before anything starts.

    \b
    Example:
      ganbench claim run table1-digits
      ganbench claim run table2-svhn --device cuda
      ganbench claim run table1-cifar10 --run 3f9f22e9...   # probe a finished run
    """
    from ganbench.claims import runner
    from ganbench.claims.recipe import load
    from ganbench.claims.results import table, write_report
    from ganbench.data.paths import cache_root
    from ganbench.tracking.store import quiet_mlflow

    quiet_mlflow()
    recipe = load(ref)
    cache = cache_root(cache_dir)
    folder = (cache / "claims" / recipe.name) if out is None else Path(out)
    options = runner.ClaimOptions(
        ref=ref,
        out=folder,
        cache=cache,
        tracking_uri=runner.tracking_uri_of(folder, tracking_uri),
        data_root=data_root,
        bad_images=bad_images,
        device=device,
        run_id=run_id,
        progress=progress,
    )
    say = functools.partial(click.echo, err=True)
    done = runner.run_claim(recipe, options, say)
    rows, files = write_report(recipe, done)
    for line in table(rows):
        click.echo(line)
    click.echo(f"report: {files['markdown']} (and {files['json'].name}, {files['figure'].name})")
