"""Runs that survive: ``ganbench resume``, ``ganbench runs`` (which are alive, dead,
resumable) and ``ganbench sync`` (deliver a waiting journal), with the options ``ganbench
run`` shares. The commands are thin: the work is :mod:`ganbench.runs`'s
(:mod:`~ganbench.runs.service`, :mod:`~ganbench.runs.resuming`,
:mod:`~ganbench.runs.syncing`, :mod:`~ganbench.runs.status`)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ganbench.cli.data import data_options, typed
from ganbench.cli.run_options import tracking_option

#: Default seconds a finished run waits for an absent tracking store before exit code 1.
DEFAULT_TRACKING_WAIT = 120.0


def run_folder_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--run-dir",
        type=click.Path(file_okay=False),
        help="The run's folder: checkpoints, heartbeat, tracking journal. Must be new or"
        " empty. [default: CACHE/runs/RUN_ID]",
    )(f)


def launcher_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--nproc`` and ``--max-restarts``: start torchrun's launcher for this machine."""
    f = click.option(
        "--max-restarts",
        type=int,
        default=0,
        show_default=True,
        help="With --nproc: after a process fails, torchrun restarts the group this many"
        " times; the run continues from its last checkpoint, in the same MLflow run.",
    )(f)
    f = click.option(
        "--nproc",
        type=int,
        help="Train data-parallel on N processes of this machine (one per GPU; gloo"
        " processes on the CPU): the same as `torchrun --standalone --nproc-per-node N -m"
        " ganbench ...`. --batch-size is the global batch.",
    )(f)
    return f


def say_on_stderr() -> Callable[[str], None]:
    """Where a command's notes go: stderr (its results go to stdout, ``click.echo``)."""
    return functools.partial(click.echo, err=True)


def resume_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option(
        "--force",
        is_flag=True,
        help="With a resume: continue a RUNNING run with a recent heartbeat from another"
        " machine (only when you know its process is gone).",
    )(f)
    f = click.option(
        "--tracking-wait",
        type=float,
        default=DEFAULT_TRACKING_WAIT,
        show_default=True,
        envvar="GANBENCH_TRACKING_WAIT",
        help="Seconds to wait at the end for an absent tracking store before exiting 1"
        " (the records stay in the run folder for `ganbench sync`).",
    )(f)
    return f


@click.command()
@click.argument("ref", metavar="RUN_ID|RUN_DIR")
@tracking_option
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda[:N].")
@data_options
@click.option(
    "--inception-weights",
    type=click.Path(dir_okay=False),
    envvar="GANBENCH_INCEPTION_WEIGHTS",
    help="Local Inception-v3 weights file. [default: the run's]",
)
@click.option(
    "--steps",
    type=int,
    help="Train to this many steps in all: extends (or shortens) the run's budget on"
    " purpose, a FINISHED run's too; recorded as the tag ganbench.budget_extended.",
)
@click.option("--epochs", type=float, help="The same, as passes over the data.")
@click.option("--d-steps", type=int, help="The same, in D updates (real batches).")
@resume_options
@launcher_options
@click.option("--progress/--no-progress", default=True, help="Show the progress bar.")
def resume(
    ref: str,
    tracking_uri: str | None,
    device: str,
    data_root: str | None,
    cache_dir: str | None,
    bad_images: str,
    inception_weights: str | None,
    steps: int | None,
    epochs: float | None,
    d_steps: int | None,
    tracking_wait: float,
    force: bool,
    nproc: int | None,
    max_restarts: int,
    progress: bool,
) -> None:
    """Continue a stopped or dead run exactly where its last checkpoint left it.

    \b
    The same MLflow run goes back to RUNNING; records the dead process logged after its
    checkpoint are not logged again; a damaged newest checkpoint falls back to the one
    before. A run whose process is alive is refused. Data and cache folders default to
    the run's own. A distributed run resumes on any number of processes (--nproc N, or
    under torchrun); the world size is recorded with the resume. Every setting stays as
    the run has it, but for the length of training when --steps, --epochs or --d-steps
    asks for another (a FINISHED run then trains on).

    \b
    Example:
      ganbench resume 3f9f22e9...                   # by MLflow run ID (--tracking-uri)
      ganbench resume ~/.cache/ganbench/runs/3f9f22e9...
      ganbench resume 3f9f22e9... --nproc 8
      ganbench resume 3f9f22e9... --steps 600       # a finished 300-step run, on to 600
    """
    import sys

    from ganbench.plugins import load_registries
    from ganbench.runs.resuming import resume_run
    from ganbench.tracking.store import quiet_mlflow
    from ganbench.training.devices import resolve_device
    from ganbench.training.distributed import process_group
    from ganbench.training.launch import DataOptions

    lengths = {"steps": steps, "epochs": epochs, "d_steps": d_steps}
    budget = {k: v for k, v in lengths.items() if v is not None}
    if len(budget) > 1:
        raise click.UsageError("give one of --steps, --epochs or --d-steps")
    if nproc is not None:
        from ganbench.training.launcher import launch

        launch(nproc, max_restarts, sys.argv[1:])
        return
    quiet_mlflow()
    with process_group(device) as replicas:
        resume_run(
            ref,
            load_registries(),
            DataOptions(
                data_root,
                typed("cache_dir", cache_dir),
                bad_images,
                typed("inception_weights", inception_weights),
            ),
            plan=None,
            tracking_uri=tracking_uri,
            device=replicas.device if replicas else resolve_device(device),
            tracking_wait=tracking_wait,
            force=force,
            progress=progress,
            say=say_on_stderr(),
            echo=click.echo,
            replicas=replicas,
            budget=budget or None,
        )


@click.command()
@click.argument("path", metavar="[RUN_DIR]", required=False, type=click.Path(file_okay=False))
@tracking_option
@click.option(
    "--cache-dir",
    envvar="GANBENCH_CACHE_DIR",
    type=click.Path(file_okay=False),
    help="Without RUN_DIR: where to look for folders with records waiting (CACHE/runs/*,"
    " CACHE/outbox/*). [default: $GANBENCH_CACHE_DIR or the user cache folder]",
)
@click.option(
    "--timeout",
    type=float,
    default=300,
    show_default=True,
    help="Seconds to keep trying (per folder).",
)
@click.option("--progress/--no-progress", default=True)
def sync(
    path: str | None,
    tracking_uri: str | None,
    cache_dir: str | None,
    timeout: float,
    progress: bool,
) -> None:
    """Deliver a run folder's waiting tracking records to MLflow, in order.

    \b
    A run whose tracking store was away when it ended exits 1 and names its folder; run
    this once the store is back. The store defaults to the one the run used. Without
    RUN_DIR, every folder under the cache with records waiting is delivered: training
    runs (CACHE/runs/*) and the outboxes of eval, probe and the other commands
    (CACHE/outbox/*). Records MLflow refuses, files that are gone and damaged journal
    lines are set aside in the folder's outbox/rejected.jsonl and named; then the exit
    code is 1.

    \b
    Example:
      ganbench sync ~/.cache/ganbench/runs/3f9f22e9...
      ganbench sync                  # every folder with records waiting
    """
    from ganbench.runs.syncing import sync_folder, sync_waiting
    from ganbench.tracking.store import quiet_mlflow

    quiet_mlflow()
    if path is not None:
        sync_folder(
            Path(path), tracking_uri, timeout, progress, say=say_on_stderr(), echo=click.echo
        )
        return
    sync_waiting(cache_dir, tracking_uri, timeout, progress, say=say_on_stderr(), echo=click.echo)


@click.command()
@click.option("--experiment", default="ganbench", show_default=True, help="MLflow experiment.")
@tracking_option
@click.option(
    "--cache-dir",
    envvar="GANBENCH_CACHE_DIR",
    type=click.Path(file_okay=False),
    help="Where run folders are. [default: $GANBENCH_CACHE_DIR or the user cache folder]",
)
@click.option("--limit", type=int, default=50, show_default=True, help="Newest runs shown.")
def runs(experiment: str, tracking_uri: str | None, cache_dir: str | None, limit: int) -> None:
    """List an experiment's runs: status, step, last heartbeat, alive or dead, resumable.

    A RUNNING run whose process died (kill -9, a lost node) cannot mark itself: it shows
    as dead here, with the command that resumes it. TRACKING says what its folder's
    outbox holds: records waiting, records set aside (`3 rejected`: MLflow refused them
    or their file is gone; see outbox/rejected.jsonl), a writer that stopped.
    """
    from ganbench.runs.status import list_runs
    from ganbench.tracking.store import quiet_mlflow

    quiet_mlflow()
    rows = list_runs(experiment, tracking_uri, cache_dir, limit)
    header = ("RUN ID", "NAME", "STATUS", "STEP", "HEARTBEAT", "PROCESS", "TRACKING", "RESUME")
    table = [header, *[row.cells() for row in rows]]
    widths = [max(len(r[i]) for r in table) for i in range(len(header) - 1)]
    for r in table:  # plain columns: they stay aligned in pipes and logs (no wrapping)
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])
    if not rows:
        click.echo(f"(no runs in experiment {experiment!r})")
