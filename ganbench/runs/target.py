"""Which MLflow run a short command (eval, probe, zoo export, analyze) works on, and where
its weights are read from: the run's own folder on this machine first, MLflow second.

A training run keeps its checkpoints in its folder (``CACHE/runs/RUN_ID`` or the
``--run-dir`` it was given), the same files it uploads as ``checkpoints/last.pt`` and
``best.pt``. Reading them there costs no download and works while the tracking store is
away; the store is asked only when there is no folder, and then fails in seconds with one
line when it does not answer (MLflow's client alone would retry for minutes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ganbench.errors import CheckpointError, GanbenchError
from ganbench.files.redact import safe_uri
from ganbench.rundir.folder import RunFolder, default_path
from ganbench.runs.reopen import CHECKPOINT_ARTIFACTS, LoadedRun, Which, is_checkpoint_file

if TYPE_CHECKING:
    from ganbench.plugins import Registries

Say = Callable[[str], None]


@dataclass(frozen=True)
class Target:
    """An MLflow run a command logs into, and the training's folder when it is here."""

    run_id: str
    tracking_uri: str
    #: The training's own run folder on this machine (None: only MLflow has the run).
    folder: RunFolder | None = None
    experiment_id: str | None = None

    def describe(self) -> str:
        return f"MLflow run {self.run_id} in {safe_uri(self.tracking_uri)}"


def locate(ref: str, tracking_flag: str | None, cache: Path) -> Target | None:
    """The run ``ref`` names (an MLflow run ID or a run folder); None for a checkpoint file.

    The store is ``--tracking-uri`` (or ``$MLFLOW_TRACKING_URI``) when given, else the one
    the run's folder records, else the default, as ``ganbench sync`` chooses it."""
    from ganbench.tracking.tracker import resolve_tracking_uri

    if is_checkpoint_file(ref):
        return None
    path = Path(ref).expanduser()
    if RunFolder.is_run_folder(path):
        folder: RunFolder | None = RunFolder.open(path)
    else:
        here = default_path(cache, ref)
        folder = RunFolder.open(here) if RunFolder.is_run_folder(here) else None
        if folder is not None and folder.info.get("run_id") != ref:
            folder = None  # not the training's folder (a copy, another store's run)
    run_id = folder.run_id if folder is not None else ref
    uri = resolve_tracking_uri(tracking_flag or (folder.tracking_uri if folder else None))
    experiment = folder.info.get("experiment_id") if folder is not None else None
    return Target(run_id, uri, folder, experiment)


def local_checkpoint(folder: RunFolder, which: Which) -> list[Path]:
    """The folder's checkpoint files for ``which``, to try in order: ``best.pt``; or the
    step checkpoints, newest first (a damaged newest one leaves the one before)."""
    if which == "best":
        return [folder.best_path] if folder.best_path.is_file() else []
    return [path for _, path in folder.checkpoints()]


def load_local(
    target: Target, registries: Registries, which: Which, say: Say | None = None
) -> LoadedRun | None:
    """The run's ``which`` checkpoint from its folder, labelled with the artifact it is
    uploaded as (``runs:/ID/checkpoints/last.pt``); None when the folder has none."""
    from ganbench.runs.reopen import load_checkpoint

    if target.folder is None:
        return None
    source = f"runs:/{target.run_id}/{CHECKPOINT_ARTIFACTS[which]}"
    for path in local_checkpoint(target.folder, which):
        try:
            loaded = load_checkpoint(path, registries, source)
        except CheckpointError as exc:
            if say is not None:
                say(f"skipping {path}: {exc}")
            continue
        loaded.run_id = target.run_id
        return loaded
    return None


def open_target(
    ref: str, registries: Registries, which: Which, tracking_flag: str | None, cache: Path,
    say: Say | None = None,
) -> tuple[LoadedRun, Target | None]:  # fmt: skip
    """``ref``'s model, and the run to log into (None for a checkpoint file): from the
    run's folder when it is here, else fetched from MLflow (an absent store: one line, in
    seconds; an unknown run: one line)."""
    from ganbench.runs.reopen import load_checkpoint, load_run
    from ganbench.tracking.tracker import MlflowTracker, check_reachable

    target = locate(ref, tracking_flag, cache)
    if target is None:
        return load_checkpoint(Path(ref), registries), None
    loaded = load_local(target, registries, which, say)
    if loaded is not None:
        return loaded, target
    tracker = MlflowTracker.existing(target.tracking_uri, target.run_id)
    try:
        loaded = load_run(target.run_id, registries, which, tracker.client)
    except GanbenchError:
        check_reachable(target.tracking_uri)  # gone mid-download: say that, not "no file"
        raise
    return loaded, Target(target.run_id, target.tracking_uri, target.folder, tracker.experiment_id)
