"""Continuing a run: its folder, its newest intact checkpoint, and what it must not change.

A resume continues the same MLflow run. It refuses what would make it another run (a
changed hyperparameter, other data) and a run whose process is still alive; it falls back
to the previous checkpoint when the newest is damaged; and it knows which (metric, step)
and (image, step) records the interrupted process already logged, so none is logged twice.

The one setting a resume may change is the length of training, and only when asked to
(``ganbench resume RUN --steps N``): see :mod:`ganbench.runs.budget`.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ganbench.errors import CheckpointError, ConfigError, NothingToResume, UsageError
from ganbench.rundir import checkpoint
from ganbench.rundir.folder import RunFolder, RunInUse, default_path
from ganbench.runs.budget import effective_params, recorded_budget
from ganbench.tracking.outbox.delivery import logged_images
from ganbench.tracking.outbox.journal import Journal, pending_in, read_ops
from ganbench.training.checkpointing import Resume
from ganbench.training.runner import ENVIRONMENT_PARAMS, ENVIRONMENT_PREFIXES

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

#: A RUNNING run whose heartbeat tag is older than this is presumed dead (other hosts).
STALE_SECONDS = 180.0


def find_local(run: Run, cache: Path) -> RunFolder | None:
    """The run's folder on this machine: where its tag says, else ``CACHE/runs/RUN_ID``
    (not a stub an earlier failed fetch left: it holds nothing of the run)."""
    folder = _local(run, cache)
    return None if folder is None or is_stub(folder) else folder


def _local(run: Run, cache: Path) -> RunFolder | None:
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


def is_stub(folder: RunFolder) -> bool:
    """A folder made to fetch a checkpoint into that never got one (an earlier ganbench's
    resume whose fetch failed left it): it holds nothing of the run, so it is filled
    again."""
    return "fetched_from" in folder.info and not folder.checkpoints()


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
    checkpoint fetched from the run's artifacts (the run trained on another machine).

    A fetch that fails leaves no folder behind: a folder without a checkpoint would stand
    for the run here and tell the next resume that there is nothing to resume."""
    folder = _local(run, cache)
    if folder is not None and not is_stub(folder):
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
    info = {
        "run_id": run.info.run_id,
        "tracking_uri": uri,
        "experiment_id": run.info.experiment_id,
        "fetched_from": run.info.artifact_uri,
    }
    if folder is None:
        folder = RunFolder.create(default_path(cache, run.info.run_id), info)
    folder.lock()
    try:
        fetch_last(client, run.info.run_id, folder, say)
    except BaseException:
        folder.unlock()
        shutil.rmtree(folder.path, ignore_errors=True)
        raise
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
    """The newest checkpoint that loads and whose checksum holds; the damaged ones before
    it are said in one warning line naming them and the one used."""
    damaged: list[tuple[Path, str]] = []
    for _, path in folder.checkpoints():
        try:
            data = checkpoint.load_file(path, checkpoint.CHECKPOINT_FORMAT)
        except CheckpointError as exc:
            damaged.append((path, _why(exc, path)))
            continue
        if "resume" not in data:
            raise CheckpointError(
                f"{path} was written by an older ganbench without the training state a resume"
                " needs (random generators, data order); start a new run"
            )
        if damaged:
            bad = "; ".join(f"{p.name} {why}" for p, why in damaged)
            say(f"warning: {bad}; resuming from the checkpoint before it, {path.name}")
        return path, data
    if damaged:  # (exit code 4 as for no checkpoint: a study starts such a trial over)
        names = ", ".join(p.name for p, _ in damaged)
        raise NothingToResume(
            f"no intact checkpoint in {folder.checkpoint_dir}: {names}"
            f" {'are' if len(damaged) > 1 else 'is'} damaged ({damaged[0][1]}). Put an intact"
            " copy there (MLflow keeps the newest as the run's checkpoints/last.pt) and"
            " resume again, or start a new run"
        )
    raise NothingToResume(
        f"no checkpoint in {folder.checkpoint_dir}: the run stopped before its first"
        " one; start it again with `ganbench run`"
    )


def _why(exc: CheckpointError, path: Path) -> str:
    """What is wrong with ``path``, from a :func:`checkpoint.load_file` error: without the
    path and the advice (the caller says what happens instead)."""
    text = str(exc).removeprefix(f"{path} ")
    return text.split("; use an intact copy")[0]


def compared_params(logged: Mapping[str, str]) -> dict[str, str]:
    """The logged params a resume must match (not where the run trains: device, speed.*,
    distributed.*)."""
    return {
        k: v
        for k, v in logged.items()
        if k not in ENVIRONMENT_PARAMS and not k.startswith(ENVIRONMENT_PREFIXES)
    }


def check_unchanged(
    logged: Mapping[str, str],
    params: Mapping[str, str],
    what: str = "settings",
    *,
    changing: Collection[str] = (),
) -> dict[str, str]:
    """Refuse a resume whose ``params`` differ from the run's logged ones (but for the
    ``changing`` ones: a budget asked for); returns the params the run never logged (added
    by a newer ganbench), to be logged now."""
    before = compared_params(logged)
    changed = [
        f"{k}={params[k]} (the run has {before[k]})"
        for k in before
        if k in params and params[k] != before[k] and k not in changing
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


def resume_point(
    folder: RunFolder, run: Run, say: Callable[[str], None], *, extending: bool = False
) -> Resume:
    """The checkpoint to continue from. A FINISHED run has none, unless its budget is
    being extended (``extending``), or was, by a resume that stopped before its end."""
    recorded = recorded_budget(run).get("total_steps")
    finished = run.info.status == "FINISHED" and not extending
    if finished and recorded is None:
        raise _finished(run)
    path, data = newest_intact(folder, say)
    if finished and int(data["step"]) >= int(recorded or 0):
        raise _finished(run)
    number = int(run.data.tags.get("ganbench.resumes", "0")) + 1
    return Resume(data, path, number, dict(run.data.params))


def _finished(run: Run) -> UsageError:
    steps = effective_params(run).get("total_steps", "its")
    return UsageError(
        f"run {run.info.run_id} has FINISHED its {steps} steps; there is nothing to resume."
        f" Train it longer with `ganbench resume {run.info.run_id} --steps N` (N more than"
        f" {steps}), score it with `ganbench eval`, or start a new one with `ganbench run`"
    )


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
    from ganbench.tracking.store import retrying

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
