"""Continuing a run: its folder, its newest intact checkpoint, and what it must not change.

A resume continues the same MLflow run. It refuses what would make it another run (a
changed hyperparameter, other data) and a run whose process is still alive; it falls back
to the previous checkpoint when the newest is damaged; and it knows which (metric, step)
and (image, step) records the interrupted process already logged, so none is logged twice.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ganbench import checkpoint
from ganbench.errors import CheckpointError, ConfigError, NothingToResume, UsageError
from ganbench.outbox.delivery import logged_images
from ganbench.outbox.journal import Journal, pending_in, read_ops
from ganbench.runfolder import RunFolder, RunInUse, default_path
from ganbench.training.runner import ENVIRONMENT_PARAMS, ENVIRONMENT_PREFIXES, Resume

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

#: A RUNNING run whose heartbeat tag is older than this is presumed dead (other hosts).
STALE_SECONDS = 180.0


def find_local(run: Run, cache: Path) -> RunFolder | None:
    """The run's folder on this machine: where its tag says, else ``CACHE/runs/RUN_ID``."""
    run_id = run.info.run_id
    for candidate in (run.data.tags.get("ganbench.run_dir"), default_path(cache, run_id)):
        if candidate and RunFolder.is_run_folder(Path(candidate)):
            folder = RunFolder.open(Path(candidate))
            if folder.run_id == run_id:
                return folder
    return None


def heartbeat_age(run: Run) -> float | None:
    """Seconds since the run's last heartbeat tag (``ISO-TIME step N on HOST``)."""
    import datetime

    tag = run.data.tags.get("ganbench.heartbeat")
    if not tag:
        return None
    try:
        when = datetime.datetime.fromisoformat(tag.split(" ", 1)[0])
    except ValueError:
        return None
    return time.time() - when.timestamp()


def claim_folder(
    run: Run,
    cache: Path,
    client: MlflowClient,
    uri: str,
    *,
    force: bool,
    say: Callable[[str], None],
) -> RunFolder:
    """The run's folder, locked by this process: the local one, or a new one holding the
    checkpoint fetched from the run's artifacts (the run trained on another machine)."""
    folder = find_local(run, cache)
    if folder is not None:
        folder.lock()
        return folder
    age = heartbeat_age(run)
    if run.info.status == "RUNNING" and age is not None and age < STALE_SECONDS and not force:
        raise RunInUse(
            f"run {run.info.run_id} is RUNNING and sent a heartbeat {age:.0f} s ago"
            f" ({run.data.tags['ganbench.heartbeat']}); its folder is not on this machine, so"
            " it may still be training elsewhere. Stop it there, or pass --force if that"
            " process is gone"
        )
    path = default_path(cache, run.info.run_id)
    folder = RunFolder.create(
        path,
        {
            "run_id": run.info.run_id,
            "tracking_uri": uri,
            "experiment_id": run.info.experiment_id,
            "fetched_from": run.info.artifact_uri,
        },
    )
    folder.lock()
    fetch_last(client, run.info.run_id, folder, say)
    return folder


def fetch_last(client: MlflowClient, run_id: str, folder: RunFolder, say: Callable) -> None:
    """Download the run's ``checkpoints/last.pt`` (and best.pt) into ``folder``."""
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory(dir=folder.path) as tmp:
        try:
            got = Path(client.download_artifacts(run_id, "checkpoints", tmp))
        except (MlflowException, OSError) as exc:
            raise NothingToResume(
                f"run {run_id} has no local folder here and no checkpoint in its artifacts"
                f" ({str(exc).splitlines()[0]}); it cannot be resumed"
            ) from None
        last = got / "last.pt"
        if not last.is_file():
            raise NothingToResume(f"run {run_id} has no checkpoints/last.pt; it cannot be resumed")
        step = int(checkpoint.load_file(last, checkpoint.CHECKPOINT_FORMAT)["step"])
        folder.checkpoint_dir.mkdir(exist_ok=True)
        shutil.move(last, folder.checkpoint_dir / f"step-{step:09d}.pt")
        if (got / "best.pt").is_file():
            shutil.move(got / "best.pt", folder.best_path)
    say(f"fetched the checkpoint of step {step} from the run's artifacts into {folder.path}")


def newest_intact(folder: RunFolder, say: Callable[[str], None]) -> tuple[Path, dict[str, Any]]:
    """The newest checkpoint that loads, saying which ones did not and why."""
    for _, path in folder.checkpoints():
        try:
            data = checkpoint.load_file(path, checkpoint.CHECKPOINT_FORMAT)
        except CheckpointError as exc:
            say(f"{path.name} cannot be read ({exc}); falling back to the checkpoint before it")
            continue
        if "resume" not in data:
            raise CheckpointError(
                f"{path} was written by an older ganbench without the training state a resume"
                " needs (random generators, data order); start a new run"
            )
        return path, data
    raise NothingToResume(
        f"no intact checkpoint in {folder.checkpoint_dir}: the run stopped before its first"
        " one; start it again with `ganbench run`"
    )


def compared_params(logged: Mapping[str, str]) -> dict[str, str]:
    """The logged params a resume must match (not where the run trains: device, speed.*,
    distributed.*)."""
    return {
        k: v
        for k, v in logged.items()
        if k not in ENVIRONMENT_PARAMS and not k.startswith(ENVIRONMENT_PREFIXES)
    }


def check_unchanged(
    logged: Mapping[str, str], params: Mapping[str, str], what: str = "settings"
) -> dict[str, str]:
    """Refuse a resume whose ``params`` differ from the run's logged ones; returns the
    params the run never logged (added by a newer ganbench), to be logged now."""
    before = compared_params(logged)
    changed = [
        f"{k}={params[k]} (the run has {before[k]})"
        for k in before
        if k in params and params[k] != before[k]
    ]
    if changed:
        raise ConfigError(
            f"a resume continues the run as it was; these {what} differ: {', '.join(changed)}."
            " Resume without them, or start a new run for a new variant"
        )
    return {k: v for k, v in params.items() if k not in logged}


def already_logged(
    journal: Journal, client: MlflowClient, run: Run, after: int
) -> set[tuple[str, int]]:
    """(key, step) of metrics and images logged after step ``after``: from the journal
    (all the run's processes queued, delivered or not) and from the store (a folder
    fetched from another machine has no journal)."""
    pairs: set[tuple[str, int]] = set()
    for op in journal.ops():
        if op["op"] == "metrics" and op["step"] > after:
            pairs.update((k, op["step"]) for k in op["values"])
        elif op["op"] == "image" and op["step"] > after:
            pairs.add((op["key"], op["step"]))
    for key in run.data.metrics:
        history = client.get_metric_history(run.info.run_id, key)
        pairs.update((key, m.step) for m in history if m.step > after)
    pairs.update(p for p in logged_images(client, run.info.run_id) if p[1] > after)
    return pairs


def resume_point(folder: RunFolder, run: Run, say: Callable[[str], None]) -> Resume:
    if run.info.status == "FINISHED":
        raise UsageError(
            f"run {run.info.run_id} has FINISHED; there is nothing to resume (`ganbench eval`"
            " scores it, `ganbench run` starts a new one)"
        )
    path, data = newest_intact(folder, say)
    number = int(run.data.tags.get("ganbench.resumes", "0")) + 1
    return Resume(data, path, number, dict(run.data.params))


def journaled_status(folder: RunFolder) -> str | None:
    """The last status the run's processes journaled (delivered or not)."""
    statuses = [op["status"] for op in read_ops(folder.path / "outbox", b'"op":"status"')]
    return statuses[-1] if statuses else None


def refuse_finished_locally(folder: RunFolder) -> None:
    """A run that journaled FINISHED but whose records still wait needs a sync, not a
    resume (its store may still show RUNNING)."""
    if journaled_status(folder) == "FINISHED" and pending_in(folder.path / "outbox"):
        raise UsageError(
            f"run {folder.run_id} finished training; only its tracking records wait. Deliver"
            f" them with: ganbench sync {folder.path}"
        )


def launch_run(
    launch: str, cache: Path, store: Callable[[], MlflowClient] | None, experiment: str
) -> str | None:
    """The run this torchrun launch (its rendezvous id) started before a restart
    (``--max-restarts``) or a requeue, if it can be continued: its folder on this machine
    (``run.json`` records the launch), else the MLflow run tagged with it (rank 0 may be
    on another node now); ``store`` opens the MLflow client (None: no store yet). None
    when there is none, when it FINISHED, or when it died before its first checkpoint
    (then it is marked FAILED, and the caller starts a new run)."""
    import json

    from mlflow.exceptions import MlflowException

    from ganbench.errors import TrackingError
    from ganbench.mlflow_store import retrying

    if store is None:  # a store that does not exist yet holds no run
        return None
    client = store()
    runs = cache / "runs"
    found = []
    for info_path in runs.glob("*/run.json") if runs.is_dir() else ():
        try:
            info = json.loads(info_path.read_text())
        except (OSError, ValueError):
            continue
        if info.get("launch") == launch:
            found.append((info_path.stat().st_mtime, info_path.parent))
    try:
        if found:
            path = max(found)[1]
            run = retrying(lambda: client.get_run(RunFolder.open(path).run_id))
        else:
            exp = retrying(lambda: client.get_experiment_by_name(experiment))
            hits = (
                retrying(
                    lambda: client.search_runs(
                        [exp.experiment_id],
                        filter_string=f"tags.`ganbench.launch` = '{launch}'",
                        order_by=["attributes.start_time DESC"],
                        max_results=1,
                    )
                )
                if exp is not None
                else []
            )
            if not hits:
                return None
            run = hits[0]
        if run.info.status == "FINISHED":
            return None
        local = find_local(run, cache)
        if "checkpoint.last_step" not in run.data.tags and not (local and local.checkpoints()):
            if run.info.status == "RUNNING":
                client.set_terminated(run.info.run_id, status="FAILED")
            return None
    except MlflowException as exc:
        # Not knowing is not "none": a new run now would duplicate this launch's run.
        raise TrackingError(
            f"cannot look up the run of torchrun launch {launch} in the MLflow store"
            f" ({str(exc).splitlines()[0]}); restart once the store answers"
        ) from None
    return run.info.run_id
