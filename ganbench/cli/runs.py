"""Runs that survive: starting one in its folder, ``ganbench resume``, ``ganbench runs``
(which are alive, dead, resumable) and ``ganbench sync`` (deliver a waiting journal)."""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ganbench.cli.data import data_options, typed
from ganbench.cli.eval import tracking_option

if TYPE_CHECKING:
    import torch

    from ganbench.training.distributed import Replicas
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


def _quiet(message: str) -> None:
    """What ranks other than 0 say: nothing (rank 0 speaks for the group)."""


def _prepared(
    registries: Any,
    plan: RunPlan,
    options: DataOptions,
    device: Any,
    progress: bool,
    replicas: Replicas | None,
    before: Callable[[], None] = lambda: None,
) -> tuple[Any, Any]:
    """Data and scorer; in a distributed run each node's local rank 0 prepares them first
    (downloads, caches), then the other ranks read them."""
    from ganbench.training.launch import prepare

    main = replicas is None or replicas.is_main

    def work() -> tuple[Any, Any]:
        if main:
            before()
        say = _say() if main else _quiet
        return prepare(registries, plan, options, device, progress=progress and main, say=say)

    return replicas.in_turn(work) if replicas is not None else work()


def _follow(
    plan: RunPlan,
    data: Any,
    scorer: Any,
    device: Any,
    resume: Any,
    run_id: str,
    replicas: Replicas,
) -> None:
    """A rank other than 0: train its share, logging nothing (rank 0 logs the means)."""
    from ganbench.signals import StopSignals
    from ganbench.tracking.tracker import NullTracker
    from ganbench.training.runner import train

    tracker = NullTracker()
    tracker.run_id = run_id
    with StopSignals() as stop, _silent_group_errors():
        train(
            plan,
            data,
            tracker,
            device,
            False,
            scorer,
            resume=resume,
            stop=stop,
            say=_quiet,
            replicas=replicas,
        )


@contextlib.contextmanager
def _silent_group_errors() -> Iterator[None]:
    """A stop or a divergence happens on every rank at once and rank 0 says it: the
    other ranks leave with the same exit code and say nothing."""
    from ganbench.errors import TrainingDiverged
    from ganbench.signals import Preempted

    try:
        yield
    except (Preempted, TrainingDiverged) as exc:
        raise SystemExit(exc.exit_code) from None


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
    replicas: Replicas | None = None,
) -> None:
    """What a new run and a resumed one share once their MLflow run and folder are theirs:
    say where they are, train, say where everything went."""
    from ganbench.rundir.folder import host
    from ganbench.training.launch import execute

    tracker.set_tags({"ganbench.run_dir": str(folder.path), "ganbench.host": host()})
    say = _say()
    where = str(device)
    if replicas is not None:
        where = f"{replicas.world} processes ({replicas.backend}, {device} on rank 0)"
    say(
        f"{tracker.describe()}: {plan.architecture.name} on {plan.dataset.name}"
        f" at {plan.train.resolution}px, {where}{how}"
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
        replicas=replicas,
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
    replicas: Replicas | None = None,
) -> None:
    """A new run: data first, then the MLflow run and its folder, then training. In a
    distributed run rank 0 creates the run and sends its ID to the other ranks."""
    from ganbench.data.paths import cache_root
    from ganbench.rundir.folder import RunFolder, check_free, default_path
    from ganbench.tracking.outbox.tracker import OutboxTracker
    from ganbench.tracking.provenance import run_tags
    from ganbench.tracking.store import route_mlflow_logs
    from ganbench.tracking.tracker import MlflowTracker, resolve_tracking_uri
    from ganbench.training.distributed import launch_id

    uri = resolve_tracking_uri(tracking_uri)
    say = _say()

    def check_folder() -> None:
        if run_dir:
            check_free(Path(run_dir).expanduser().resolve())

    data, scorer = _prepared(registries, plan, options, device, progress, replicas, check_folder)
    if replicas is not None and not replicas.is_main:
        _follow(plan, data, scorer, device, None, replicas.receive(), replicas)
        return
    launch = {"ganbench.launch": launch_id()} if replicas is not None and launch_id() else {}
    try:
        run = MlflowTracker(
            uri, experiment, run_name, tags={**run_tags(), **launch, **(tags or {})}
        )
        try:
            cache = cache_root(options.cache_dir)
            path = Path(run_dir) if run_dir else default_path(cache, run.run_id)
            info = {"run_id": run.run_id, "tracking_uri": uri, "experiment_id": run.experiment_id}
            info |= {"command": sys.argv, **options.record()}
            if launch:
                info["launch"] = launch["ganbench.launch"]
            folder = RunFolder.create(path, info)
            folder.lock()
            route_mlflow_logs(folder.path / "logs" / "mlflow.log")
            tracker = OutboxTracker(run, folder, say)
        except BaseException:
            run.finish("FAILED")  # never left RUNNING by a run that could not start
            raise
    except BaseException as exc:
        if replicas is not None:
            replicas.fail(exc)
        raise
    if replicas is not None:
        replicas.send(run.run_id)
    _train(plan, data, scorer, tracker, folder, device, None, progress, tracking_wait, "", replicas)


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
    replicas: Replicas | None = None,
    budget: dict[str, Any] | None = None,
) -> None:
    """Continue run ``ref`` (an MLflow run ID or a run folder) from its newest intact
    checkpoint, in the same MLflow run. ``plan`` (from ``run --resume``'s flags) must
    equal the run's settings; None takes them from the checkpoint. ``budget`` (one of
    steps, epochs, d_steps) changes the length of training on purpose, and is recorded.

    In a distributed run rank 0 finds the run and its checkpoint and sends the settings
    and the checkpoint to the other ranks (their nodes may not have the run's folder).
    A resume that fails before training leaves the run as it found it."""
    if replicas is not None and not replicas.is_main:
        _follow_resume(registries, device, progress, replicas)
        return
    from ganbench.data.paths import cache_root
    from ganbench.errors import UsageError
    from ganbench.rundir.folder import RunFolder
    from ganbench.rundir.heartbeat import Heartbeat
    from ganbench.runs import resume as resuming
    from ganbench.runs.reopen import plan_from_params
    from ganbench.tracking.outbox.tracker import OutboxTracker
    from ganbench.tracking.store import route_mlflow_logs
    from ganbench.tracking.tracker import MlflowTracker, resolve_tracking_uri
    from ganbench.training.config import LENGTH_KEYS
    from ganbench.training.distributed import check_settings
    from ganbench.training.launch import DataOptions
    from ganbench.training.runner import length_params, total_steps

    say = _say()
    folder: RunFolder | None = None
    heartbeat: Heartbeat | None = None
    changing = (*LENGTH_KEYS, *resuming.BUDGET_SIZES) if budget else ()
    try:
        try:
            folder = RunFolder.open(Path(ref)) if Path(ref).is_dir() else None
            if folder is not None:
                folder.lock()  # first: a live run is refused before anything else happens
            recorded = folder.info if folder else {}
            uri = resolve_tracking_uri(tracking_uri or recorded.get("tracking_uri"))
            existing = MlflowTracker.existing(uri, folder.run_id if folder else ref)
            run = existing.run
            cache = cache_root(options.cache_dir or recorded.get("cache_dir"))
            if folder is None:
                folder = resuming.claim_folder(
                    run, cache, existing.client, uri, force=force, say=say
                )
                recorded = folder.info
            if not budget:
                resuming.refuse_finished_locally(folder)
            point = resuming.resume_point(folder, run, say, extending=bool(budget))
            logged = resuming.effective_params(run)
            if plan is None:  # the checkpoint's settings, in the budget in force now
                saved = {**point.checkpoint["plan"]}
                saved |= {k: v for k, v in logged.items() if k in LENGTH_KEYS}
                plan = plan_from_params(registries, saved)
            if budget:
                plan = resuming.with_length(plan, budget, "the resume's budget")
            new_params = resuming.check_unchanged(logged, plan.params(), changing=changing)
            check_settings(
                plan.train.batch_size,
                plan.train.sync_bn,
                replicas.world if replicas else None,
                device.type == "cuda",
            )
            options = DataOptions(
                options.data_root or recorded.get("data_root"),
                options.cache_dir or recorded.get("cache_dir"),
                options.bad_images,
                options.inception_weights or recorded.get("inception_weights"),
            )
        except BaseException as exc:
            if replicas is not None:
                replicas.fail(exc)
            raise
        if replicas is not None:
            replicas.send(
                {
                    "plan": plan.params(),
                    "options": vars(options),
                    "checkpoint": point.checkpoint,
                    "path": str(point.path),
                    "number": point.number,
                    "logged": point.logged,
                }
            )
        # Preparing data can take long: the folder's heartbeat goes on meanwhile.
        heartbeat = Heartbeat(folder, point.step).start()
        data, scorer = _prepared(registries, plan, options, device, progress, replicas)
        try:
            steps = total_steps(plan, len(data) // plan.train.batch_size)
            sizes = {"num_images": str(len(data))}
            sizes |= {k: str(v) for k, v in length_params(plan, steps).items()}
            new_params |= resuming.check_unchanged(logged, sizes, "data sizes", changing=changing)
            if budget and steps <= point.step:
                raise UsageError(
                    f"a budget of {resuming.length_text(vars(plan.train))} is {steps} steps,"
                    f" and run {run.info.run_id} is at step {point.step} already (its newest"
                    f" checkpoint); give a budget of more than {point.step} steps"
                )
            extended = resuming.budget_record(logged, plan, sizes) if budget else {}
            route_mlflow_logs(folder.path / "logs" / "mlflow.log")
            tracker = OutboxTracker(existing, folder, say)
            tracker.skip = resuming.already_logged(
                tracker.journal, existing.client, run, point.step
            )
        except BaseException as exc:
            if replicas is not None:
                replicas.fail(exc)
            raise
    except BaseException:
        if heartbeat is not None:
            heartbeat.stop()
        if folder is not None:
            folder.unlock()
        raise
    if heartbeat is not None:
        heartbeat.stop()  # the training loop beats from here on
    if replicas is not None:
        replicas.send(run.info.run_id)
    tracker.set_status("RUNNING")
    tracker.delete_tag("ganbench.resumable")
    if "ganbench.diverged" in run.data.tags:  # this resume decides anew
        tracker.delete_tag("ganbench.diverged")
    if new_params:
        tracker.log_params(new_params)
    if extended:
        tracker.set_tags(
            {
                resuming.BUDGET_TAG: json.dumps(extended["budget"], sort_keys=True),
                resuming.BUDGET_NOTE_TAG: extended["note"],
            }
        )
        history = [*folder.info.get("budget_extended", []), extended["note"]]
        folder.update_info(budget=extended["budget"], budget_extended=history)
        say(f"budget: {extended['note']}")
    resumed = f", resumed from step {point.step} of {steps}"
    _train(
        plan,
        data,
        scorer,
        tracker,
        folder,
        device,
        point,
        progress,
        tracking_wait,
        resumed,
        replicas,
    )


def _follow_resume(registries: Any, device: Any, progress: bool, replicas: Replicas) -> None:
    """A rank other than 0 in a resume: the settings and checkpoint come from rank 0."""
    from ganbench.runs.reopen import plan_from_params
    from ganbench.training.launch import DataOptions
    from ganbench.training.runner import Resume

    sent = replicas.receive()
    plan = plan_from_params(registries, sent["plan"])
    options = DataOptions(**sent["options"])
    point = Resume(sent["checkpoint"], Path(sent["path"]), sent["number"], sent["logged"])
    data, scorer = _prepared(registries, plan, options, device, progress, replicas)
    _follow(plan, data, scorer, device, point, replicas.receive(), replicas)


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
    Example:
      ganbench resume 3f9f22e9...                   # by MLflow run ID (--tracking-uri)
      ganbench resume ~/.cache/ganbench/runs/3f9f22e9...
      ganbench resume 3f9f22e9... --nproc 8
      ganbench resume 3f9f22e9... --steps 600       # a finished 300-step run, on to 600
    """
    import sys

    from ganbench.plugins import load_registries
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
    Example:
      ganbench sync ~/.cache/ganbench/runs/3f9f22e9...
      ganbench sync                  # every folder with records waiting
    """
    from ganbench.data.paths import cache_root
    from ganbench.errors import GanbenchError, TrackingError
    from ganbench.rundir.folder import RunInUse
    from ganbench.tracking.outbox.sync import waiting_folders
    from ganbench.tracking.store import quiet_mlflow

    quiet_mlflow()
    if path is not None:
        _sync_folder(Path(path), tracking_uri, timeout, progress)
        return
    cache = cache_root(cache_dir)
    folders = list(waiting_folders(cache))
    if not folders:
        click.echo(f"nothing to deliver: no run folder under {cache} has records waiting")
        return
    say = _say()
    delivered, skipped, failed = 0, 0, []
    for folder in folders:
        try:
            _sync_folder(folder, tracking_uri, timeout, progress)
            delivered += 1
        except RunInUse:
            say(f"{folder}: skipped, its run is alive (its own process delivers its records)")
            skipped += 1
        except GanbenchError as exc:
            say(f"{folder}: Error: {exc}")
            failed.append(folder)
    click.echo(
        f"synced {len(folders)} folders under {cache}: {delivered} delivered in full,"
        f" {len(failed)} not (named above), {skipped} skipped (alive)"
    )
    if failed:
        raise TrackingError(
            f"{len(failed)} of {len(folders)} folders under {cache} were not delivered in"
            f" full, the first {failed[0]}: see the lines above, then run ganbench sync again"
        )


def _sync_folder(path: Path, tracking_uri: str | None, timeout: float, progress: bool) -> None:
    """``ganbench sync RUN_DIR``: deliver, then say what arrived, or raise naming what
    did not (records set aside, a writer that stopped, records still waiting)."""
    from ganbench.errors import TrackingError
    from ganbench.tracking.outbox import problems
    from ganbench.tracking.outbox.sync import deliver, named

    say = _say()
    result = deliver(path, tracking_uri, timeout, progress=progress, say=say)
    where = f"run {result.run_id} in {result.uri}"
    outbox = result.path / "outbox"
    if not result.waiting:
        earlier = problems.rejected_count(outbox)
        note = f" ({earlier} set aside earlier: {result.rejected_file})" if earlier else ""
        click.echo(
            f"nothing to deliver: {result.uri} has every record of run {result.run_id}{note}"
        )
        return
    for line in result.rejections:
        say(f"set aside: {line}")
    if result.rejected > len(result.rejections):
        say(f"set aside: {result.rejected - len(result.rejections)} more in {result.rejected_file}")
    if result.failure:
        raise TrackingError(
            f"the tracking writer stopped ({result.failure}) with {result.left} of"
            f" {result.waiting} records of {where} still waiting in {result.path} (see"
            f" {outbox / problems.WRITER_FAILED}); fix the cause, then ganbench sync"
            f" {result.path} again"
        )
    if result.left:
        raise TrackingError(
            f"{result.left} of {result.waiting} records are still not delivered to"
            f" {result.uri} after {timeout:.0f} s; they stay in {result.path}: try again later"
        )
    if result.rejected:
        raise TrackingError(
            f"delivered the {result.waiting} waiting records of {where} (now"
            f" {result.status}) except {result.rejected} that could not be: {named(result)}."
            f" They are kept, with the reasons, in {result.rejected_file}"
        )
    click.echo(f"delivered {result.waiting} records to {where} (now {result.status})")


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
    from ganbench.data.paths import cache_root
    from ganbench.errors import UsageError
    from ganbench.runs.status import describe
    from ganbench.tracking.store import open_client, quiet_mlflow, retrying
    from ganbench.tracking.tracker import check_reachable, resolve_tracking_uri

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
    header = ("RUN ID", "NAME", "STATUS", "STEP", "HEARTBEAT", "PROCESS", "TRACKING", "RESUME")
    table = [header, *[row.cells() for row in rows]]
    widths = [max(len(r[i]) for r in table) for i in range(len(header) - 1)]
    for r in table:  # plain columns: they stay aligned in pipes and logs (no wrapping)
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])
    if not rows:
        click.echo(f"(no runs in experiment {experiment!r})")
