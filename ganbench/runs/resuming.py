"""Resuming a run, end to end: find it, check it, prepare its data, continue it.

The steps in their order, and who does what in a distributed run; the checks each step
makes (the folder, the checkpoint, the settings that must not change, the records
already logged) are :mod:`ganbench.runs.resume`'s, the budget's are
:mod:`ganbench.runs.budget`'s. A resume that fails before training leaves the run as it
found it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ganbench.data.paths import cache_root
from ganbench.errors import UsageError
from ganbench.rundir.folder import RunFolder
from ganbench.rundir.heartbeat import Heartbeat
from ganbench.runs.budget import (
    BUDGET_NOTE_TAG,
    BUDGET_SIZES,
    BUDGET_TAG,
    budget_record,
    effective_params,
    length_text,
    with_length,
)
from ganbench.runs.reopen import plan_from_params
from ganbench.runs.resume import (
    already_logged,
    check_unchanged,
    claim_folder,
    refuse_finished_locally,
    resume_point,
)
from ganbench.runs.service import Say, follow, prepared, train_in_folder
from ganbench.tracking.outbox.tracker import OutboxTracker
from ganbench.tracking.store import route_mlflow_logs
from ganbench.tracking.tracker import MlflowTracker, resolve_tracking_uri
from ganbench.training.checkpointing import Resume
from ganbench.training.config import LENGTH_KEYS
from ganbench.training.distributed import check_settings
from ganbench.training.launch import DataOptions
from ganbench.training.runner import length_params, total_steps

if TYPE_CHECKING:
    import torch

    from ganbench.training.distributed import Replicas
    from ganbench.training.plan import RunPlan


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
    say: Say,
    echo: Say,
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
        _follow_resume(registries, device, progress, replicas, say)
        return
    folder: RunFolder | None = None
    heartbeat: Heartbeat | None = None
    changing = (*LENGTH_KEYS, *BUDGET_SIZES) if budget else ()
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
                folder = claim_folder(run, cache, existing.client, uri, force=force, say=say)
                recorded = folder.info
            if not budget:
                refuse_finished_locally(folder)
            point = resume_point(folder, run, say, extending=bool(budget))
            logged = effective_params(run)
            if plan is None:  # the checkpoint's settings, in the budget in force now
                saved = {**point.checkpoint["plan"]}
                saved |= {k: v for k, v in logged.items() if k in LENGTH_KEYS}
                plan = plan_from_params(registries, saved)
            if budget:
                plan = with_length(plan, budget, "the resume's budget")
            new_params = check_unchanged(logged, plan.params(), changing=changing)
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
        data, scorer = prepared(registries, plan, options, device, progress, replicas, say)
        try:
            steps = total_steps(plan, len(data) // plan.train.batch_size)
            sizes = {"num_images": str(len(data))}
            sizes |= {k: str(v) for k, v in length_params(plan, steps).items()}
            new_params |= check_unchanged(logged, sizes, "data sizes", changing=changing)
            if budget and steps <= point.step:
                raise UsageError(
                    f"a budget of {length_text(vars(plan.train))} is {steps} steps,"
                    f" and run {run.info.run_id} is at step {point.step} already (its newest"
                    f" checkpoint); give a budget of more than {point.step} steps"
                )
            extended = budget_record(logged, plan, sizes) if budget else {}
            route_mlflow_logs(folder.path / "logs" / "mlflow.log")
            tracker = OutboxTracker(existing, folder, say)
            tracker.skip = already_logged(tracker.journal, existing.client, run, point.step)
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
                BUDGET_TAG: json.dumps(extended["budget"], sort_keys=True),
                BUDGET_NOTE_TAG: extended["note"],
            }
        )
        history = [*folder.info.get("budget_extended", []), extended["note"]]
        folder.update_info(budget=extended["budget"], budget_extended=history)
        say(f"budget: {extended['note']}")
    resumed = f", resumed from step {point.step} of {steps}"
    train_in_folder(
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
        say=say,
        echo=echo,
    )


def _follow_resume(
    registries: Any, device: Any, progress: bool, replicas: Replicas, say: Say
) -> None:
    """A rank other than 0 in a resume: the settings and checkpoint come from rank 0."""
    sent = replicas.receive()
    plan = plan_from_params(registries, sent["plan"])
    options = DataOptions(**sent["options"])
    point = Resume(sent["checkpoint"], Path(sent["path"]), sent["number"], sent["logged"])
    data, scorer = prepared(registries, plan, options, device, progress, replicas, say)
    follow(plan, data, scorer, device, point, replicas.receive(), replicas)
