"""Runs that survive: starting one in its folder, ``ganbench resume``, ``ganbench runs``
(which are alive, dead, resumable) and ``ganbench sync`` (deliver a waiting journal)."""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ganbench.cli.data import data_options
from ganbench.cli.eval import tracking_option

if TYPE_CHECKING:
    import torch

    from ganbench.training.launch import DataOptions
    from ganbench.training.plan import RunPlan

#: Default seconds a finished run waits for an absent tracking store before exit code 1.
DEFAULT_TRACKING_WAIT = 120.0


def run_folder_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--run-dir",
        type=click.Path(file_okay=False),
        help="The run's folder: checkpoints, heartbeat, tracking journal. Must be new or"
        " empty. [default: CACHE/runs/RUN_ID]",
    )(f)


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


def _say() -> Callable[[str], None]:
    return functools.partial(click.echo, err=True)


def _train(
    plan: RunPlan,
    data: Any,
    scorer: Any,
    tracker: Any,
    folder: Any,
    device: Any,
    resume: Any,
    progress: bool,
    tracking_wait: float,
    how: str,
) -> None:
    """What a new run and a resumed one share once their MLflow run and folder are theirs:
    say where they are, train, say where everything went."""
    from ganbench.runfolder import host
    from ganbench.training.launch import execute

    tracker.set_tags({"ganbench.run_dir": str(folder.path), "ganbench.host": host()})
    say = _say()
    say(
        f"{tracker.describe()}: {plan.architecture.name} on {plan.dataset.name}"
        f" at {plan.train.resolution}px, {device}{how}"
    )
    say(f"run folder: {folder.path}")
    result = execute(
        plan,
        data,
        scorer,
        tracker,
        folder,
        device,
        resume=resume,
        progress=progress,
        tracking_wait=tracking_wait,
        say=say,
    )
    click.echo(f"finished {result.steps} steps: run {result.run_id}")
    click.echo(
        f"artifacts: {tracker.artifact_uri} (samples_final.png, loss_curves.png,"
        f" generator.pt, checkpoints/last.pt); local copies in {result.folder}"
    )
    click.echo(f"compare runs: mlflow ui --backend-store-uri {tracker.tracking_uri}")


def start_run(
    registries: Any,
    plan: RunPlan,
    options: DataOptions,
    *,
    tracking_uri: str | None,
    experiment: str,
    run_name: str | None,
    run_dir: str | None,
    device: torch.device,
    tracking_wait: float,
    progress: bool,
    tags: dict[str, str] | None = None,
) -> None:
    """A new run: data first, then the MLflow run and its folder, then training."""
    from ganbench.data.paths import cache_root
    from ganbench.mlflow_store import route_mlflow_logs
    from ganbench.outbox.tracker import OutboxTracker
    from ganbench.provenance import run_tags
    from ganbench.runfolder import RunFolder, check_free, default_path
    from ganbench.tracking import MlflowTracker, resolve_tracking_uri
    from ganbench.training.launch import prepare

    uri = resolve_tracking_uri(tracking_uri)
    say = _say()
    if run_dir:
        check_free(Path(run_dir).expanduser().resolve())
    data, scorer = prepare(registries, plan, options, device, progress=progress, say=say)
    run = MlflowTracker(uri, experiment, run_name, tags={**run_tags(), **(tags or {})})
    try:
        path = Path(run_dir) if run_dir else default_path(cache_root(options.cache_dir), run.run_id)
        info = {"run_id": run.run_id, "tracking_uri": uri, "experiment_id": run.experiment_id}
        info |= {"command": sys.argv, **options.record()}
        folder = RunFolder.create(path, info)
        folder.lock()
        route_mlflow_logs(folder.path / "logs" / "mlflow.log")
        tracker = OutboxTracker(run, folder, say)
    except BaseException:
        run.finish("FAILED")  # never left RUNNING by a run that could not start
        raise
    _train(plan, data, scorer, tracker, folder, device, None, progress, tracking_wait, "")


def resume_run(
    ref: str,
    registries: Any,
    options: DataOptions,
    *,
    plan: RunPlan | None,
    tracking_uri: str | None,
    device: torch.device,
    tracking_wait: float,
    force: bool,
    progress: bool,
) -> None:
    """Continue run ``ref`` (an MLflow run ID or a run folder) from its newest intact
    checkpoint, in the same MLflow run. ``plan`` (from ``run --resume``'s flags) must
    equal the run's settings; None takes them from the checkpoint."""
    from ganbench.data.paths import cache_root
    from ganbench.mlflow_store import route_mlflow_logs
    from ganbench.outbox.tracker import OutboxTracker
    from ganbench.runfolder import RunFolder
    from ganbench.runs import plan_from_params
    from ganbench.tracking import MlflowTracker, resolve_tracking_uri
    from ganbench.training import resume as resuming
    from ganbench.training.launch import DataOptions, prepare
    from ganbench.training.runner import total_steps

    say = _say()
    folder = RunFolder.open(Path(ref)) if Path(ref).is_dir() else None
    if folder is not None:
        folder.lock()  # first: a live run is refused before anything else happens
    try:
        recorded = folder.info if folder else {}
        uri = resolve_tracking_uri(tracking_uri or recorded.get("tracking_uri"))
        existing = MlflowTracker.existing(uri, folder.run_id if folder else ref)
        run = existing.run
        cache = cache_root(options.cache_dir or recorded.get("cache_dir"))
        if folder is None:
            folder = resuming.claim_folder(run, cache, existing.client, uri, force=force, say=say)
            recorded = folder.info
        resuming.refuse_finished_locally(folder)
        point = resuming.resume_point(folder, run, say)
        if plan is None:
            plan = plan_from_params(registries, point.checkpoint["plan"])
        new_params = resuming.check_unchanged(run.data.params, plan.params())
        options = DataOptions(
            options.data_root or recorded.get("data_root"),
            options.cache_dir or recorded.get("cache_dir"),
            options.bad_images,
            options.inception_weights or recorded.get("inception_weights"),
        )
        data, scorer = prepare(registries, plan, options, device, progress=progress, say=say)
        steps = total_steps(plan, len(data) // plan.train.batch_size)
        sizes = {"num_images": str(len(data)), "total_steps": str(steps)}
        new_params |= resuming.check_unchanged(run.data.params, sizes, "data sizes")
        route_mlflow_logs(folder.path / "logs" / "mlflow.log")
        tracker = OutboxTracker(existing, folder, say)
        tracker.skip = resuming.already_logged(tracker.journal, existing.client, run, point.step)
    except BaseException:
        if folder is not None:
            folder.unlock()
        raise
    tracker.set_status("RUNNING")
    tracker.delete_tag("ganbench.resumable")
    if new_params:
        tracker.log_params(new_params)
    resumed = f", resumed from step {point.step} of {steps}"
    _train(plan, data, scorer, tracker, folder, device, point, progress, tracking_wait, resumed)


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
@resume_options
@click.option("--progress/--no-progress", default=True, help="Show the progress bar.")
def resume(
    ref: str,
    tracking_uri: str | None,
    device: str,
    data_root: str | None,
    cache_dir: str | None,
    bad_images: str,
    inception_weights: str | None,
    tracking_wait: float,
    force: bool,
    progress: bool,
) -> None:
    """Continue a stopped or dead run exactly where its last checkpoint left it.

    \b
    The same MLflow run goes back to RUNNING; records the dead process logged after its
    checkpoint are not logged again; a damaged newest checkpoint falls back to the one
    before. A run whose process is alive is refused. Data and cache folders default to
    the run's own.
    Example:
      ganbench resume 3f9f22e9...                   # by MLflow run ID (--tracking-uri)
      ganbench resume ~/.cache/ganbench/runs/3f9f22e9...
    """
    from ganbench.devices import resolve_device
    from ganbench.mlflow_store import quiet_mlflow
    from ganbench.plugins import load_registries
    from ganbench.training.launch import DataOptions

    quiet_mlflow()
    resume_run(
        ref,
        load_registries(),
        DataOptions(data_root, cache_dir, bad_images, inception_weights),
        plan=None,
        tracking_uri=tracking_uri,
        device=resolve_device(device),
        tracking_wait=tracking_wait,
        force=force,
        progress=progress,
    )


@click.command()
@click.argument("path", metavar="RUN_DIR", type=click.Path(file_okay=False))
@tracking_option
@click.option(
    "--timeout", type=float, default=300, show_default=True, help="Seconds to keep trying."
)
@click.option("--progress/--no-progress", default=True)
def sync(path: str, tracking_uri: str | None, timeout: float, progress: bool) -> None:
    """Deliver a run folder's waiting tracking records to MLflow, in order.

    A run whose tracking store was away when it ended exits 1 and names its folder; run
    this once the store is back. The store defaults to the one the run used.
    """
    from ganbench.errors import TrackingError
    from ganbench.mlflow_store import quiet_mlflow, route_mlflow_logs
    from ganbench.outbox.journal import pending_in
    from ganbench.outbox.tracker import OutboxTracker
    from ganbench.progress import ItemProgress
    from ganbench.runfolder import RunFolder
    from ganbench.tracking import MlflowTracker, resolve_tracking_uri

    quiet_mlflow()
    folder = RunFolder.open(Path(path))
    folder.lock()
    try:
        uri = resolve_tracking_uri(tracking_uri or folder.tracking_uri)
        waiting = pending_in(folder.path / "outbox")
        if not waiting:
            click.echo(f"nothing to deliver: {uri} has every record of run {folder.run_id}")
            return
        existing = MlflowTracker.existing(uri, folder.run_id)
        route_mlflow_logs(folder.path / "logs" / "mlflow.log")
        tracker = OutboxTracker(existing, folder, _say())
        deadline = time.monotonic() + timeout
        with ItemProgress(waiting, "delivering", unit="records", enabled=progress) as bar:
            done = 0
            while tracker.writer.delivered_ops < waiting and time.monotonic() < deadline:
                time.sleep(0.1)
                bar.advance(tracker.writer.delivered_ops - done)
                done = tracker.writer.delivered_ops
        left = tracker.close(max(0.0, deadline - time.monotonic()))
        if left:
            raise TrackingError(
                f"{left} of {waiting} records are still not delivered to {uri} after"
                f" {timeout:.0f} s; they stay in {folder.path}: try again later"
            )
        status = existing.client.get_run(folder.run_id).info.status
        click.echo(f"delivered {waiting} records to run {folder.run_id} in {uri} (now {status})")
    finally:
        folder.unlock()


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
    as dead here, with the command that resumes it.
    """
    from ganbench.data.paths import cache_root
    from ganbench.errors import UsageError
    from ganbench.mlflow_store import open_client, quiet_mlflow, retrying
    from ganbench.run_status import describe
    from ganbench.tracking import check_reachable, resolve_tracking_uri

    quiet_mlflow()
    uri = resolve_tracking_uri(tracking_uri)
    check_reachable(uri)
    client = open_client(uri)
    found = retrying(lambda: client.get_experiment_by_name(experiment))
    if found is None:
        names = [e.name for e in client.search_experiments()]
        raise UsageError(
            f"no experiment {experiment!r} in {uri}; pick one with --experiment:"
            f" {', '.join(names) or 'none'}"
        )
    listed = retrying(
        lambda: client.search_runs(
            [found.experiment_id], order_by=["attributes.start_time DESC"], max_results=limit
        )
    )
    cache = cache_root(cache_dir)
    rows = [describe(run, cache) for run in listed]
    header = ("RUN ID", "NAME", "STATUS", "STEP", "HEARTBEAT", "PROCESS", "RESUME")
    table = [header, *[row.cells() for row in rows]]
    widths = [max(len(r[i]) for r in table) for i in range(len(header) - 1)]
    for r in table:  # plain columns: they stay aligned in pipes and logs (no wrapping)
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])
    if not rows:
        click.echo(f"(no runs in experiment {experiment!r})")
