"""Starting a run in its folder, and what a new run and a resumed one share.

``ganbench run`` and ``ganbench resume`` are thin commands over this module and
:mod:`ganbench.runs.resuming`: data first (nothing to clean up when it is missing), then
the MLflow run and its folder, then training; in a distributed run rank 0 speaks for the
group and the other ranks follow it. The commands pass in where words go: ``say`` for
notes (stderr), ``echo`` for results (stdout).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ganbench.data.paths import cache_root
from ganbench.errors import TrainingDiverged
from ganbench.files.redact import safe_uri
from ganbench.rundir.folder import RunFolder, check_free, default_path, host
from ganbench.signals import Preempted, StopSignals
from ganbench.tracking.outbox.tracker import OutboxTracker
from ganbench.tracking.provenance import run_tags
from ganbench.tracking.store import route_mlflow_logs
from ganbench.tracking.tracker import MlflowTracker, NullTracker, resolve_tracking_uri
from ganbench.training.distributed import launch_id
from ganbench.training.launch import execute, prepare
from ganbench.training.runner import train

if TYPE_CHECKING:
    import torch

    from ganbench.training.distributed import Replicas
    from ganbench.training.launch import DataOptions
    from ganbench.training.plan import RunPlan

Say = Callable[[str], None]


def quiet(message: str) -> None:
    """What ranks other than 0 say: nothing (rank 0 speaks for the group)."""


def prepared(
    registries: Any,
    plan: RunPlan,
    options: DataOptions,
    device: Any,
    progress: bool,
    replicas: Replicas | None,
    say: Say,
    before: Callable[[], None] = lambda: None,
) -> tuple[Any, Any]:
    """Data and scorer; in a distributed run each node's local rank 0 prepares them first
    (downloads, caches), then the other ranks read them."""
    main = replicas is None or replicas.is_main

    def work() -> tuple[Any, Any]:
        if main:
            before()
        return prepare(
            registries,
            plan,
            options,
            device,
            progress=progress and main,
            say=say if main else quiet,
        )

    return replicas.in_turn(work) if replicas is not None else work()


def follow(
    plan: RunPlan,
    data: Any,
    scorer: Any,
    device: Any,
    resume: Any,
    run_id: str,
    replicas: Replicas,
) -> None:
    """A rank other than 0: train its share, logging nothing (rank 0 logs the means)."""
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
            say=quiet,
            replicas=replicas,
        )


@contextlib.contextmanager
def _silent_group_errors() -> Iterator[None]:
    """A stop or a divergence happens on every rank at once and rank 0 says it: the
    other ranks leave with the same exit code and say nothing."""
    try:
        yield
    except (Preempted, TrainingDiverged) as exc:
        raise SystemExit(exc.exit_code) from None


def train_in_folder(
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
    replicas: Replicas | None,
    *,
    say: Say,
    echo: Say,
) -> None:
    """What a new run and a resumed one share once their MLflow run and folder are theirs:
    say where they are, train, say where everything went."""
    tracker.set_tags({"ganbench.run_dir": str(folder.path), "ganbench.host": host()})
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
    echo(f"finished {result.steps} steps: run {result.run_id}")
    echo(
        f"artifacts: {tracker.artifact_uri} (samples_final.png, loss_curves.png,"
        f" generator.pt, checkpoints/last.pt); local copies in {result.folder}"
    )
    uri = safe_uri(tracker.tracking_uri)
    if uri.startswith(("http://", "https://")):  # a tracking server has its own UI
        echo(f"compare runs: open {uri} (the MLflow server's UI)")
    else:
        echo(f"compare runs: mlflow ui --backend-store-uri {uri}")


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
    say: Say,
    echo: Say,
    tags: dict[str, str] | None = None,
    replicas: Replicas | None = None,
) -> None:
    """A new run: data first, then the MLflow run and its folder, then training. In a
    distributed run rank 0 creates the run and sends its ID to the other ranks."""
    uri = resolve_tracking_uri(tracking_uri)

    def check_folder() -> None:
        if run_dir:
            check_free(Path(run_dir).expanduser().resolve())

    data, scorer = prepared(
        registries, plan, options, device, progress, replicas, say, check_folder
    )
    if replicas is not None and not replicas.is_main:
        follow(plan, data, scorer, device, None, replicas.receive(), replicas)
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
    train_in_folder(
        plan,
        data,
        scorer,
        tracker,
        folder,
        device,
        None,
        progress,
        tracking_wait,
        "",
        replicas,
        say=say,
        echo=echo,
    )
