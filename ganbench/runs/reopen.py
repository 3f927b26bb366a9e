"""Reopening a finished (or running) training run: its plan and its trained networks.

``eval``, ``probe`` and the zoo start from an MLflow run ID or a checkpoint file; the
checkpoint carries every hyperparameter as the run logged them, so the model is rebuilt
from the checkpoint alone and the MLflow store is needed only to fetch it.
"""

from __future__ import annotations

import copy
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ganbench.errors import CheckpointError, GanbenchError
from ganbench.plugins.interfaces import GanModel, ImageShape
from ganbench.rundir import checkpoint
from ganbench.training.plan import RunPlan, plan_run

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from ganbench.plugins import Registries
    from ganbench.tracking.tracker import MlflowTracker

#: Which checkpoint of a run: the last one, or the one with the best FID (``--eval-every``).
Which = Literal["last", "best"]
CHECKPOINT_ARTIFACTS: dict[str, str] = {
    "last": "checkpoints/last.pt",
    "best": "checkpoints/best.pt",
}


@dataclass
class LoadedRun:
    """A run's plan and model with the checkpoint's weights, on the CPU."""

    plan: RunPlan
    model: GanModel
    step: int
    #: Where the weights came from: ``runs:/ID/checkpoints/last.pt`` or a file path.
    source: str
    run_id: str | None = None
    #: What each label of a conditional model means (checkpoints since class names were
    #: recorded; empty for older ones and unconditional models).
    class_names: tuple[str, ...] = ()

    @property
    def generator(self) -> str:
        """Which generator samples: "ema" (the run's moving average of G) or "live"."""
        return "live" if self.model.averaged_generator is None else "ema"

    @property
    def shape(self) -> ImageShape:
        return self.plan.shape


def plan_from_params(registries: Registries, params: Mapping[str, str]) -> RunPlan:
    """Rebuild a run's plan from its logged params (``RunPlan.params()``)."""
    params = dict(params)
    try:
        architecture, dataset = params.pop("architecture"), params.pop("dataset")
    except KeyError as exc:
        raise CheckpointError(f"the run's parameters lack {exc.args[0]!r}") from None
    # Params are strings; "None" marks an unset optional (e.g. epochs when steps was given).
    values = {k: (None if v == "None" else v) for k, v in params.items()}
    # A finished run's scoring settings are not checked again: `ganbench eval` may score
    # it another way (a resume checks them when it makes its scorer).
    layers = [("the run's parameters", values)]
    return plan_run(registries, architecture, dataset, layers, check_scoring=False)


def load_checkpoint(path: Path, registries: Registries, source: str | None = None) -> LoadedRun:
    """A model rebuilt from a ``ganbench-checkpoint/1`` file."""
    data = checkpoint.load_file(Path(path), checkpoint.CHECKPOINT_FORMAT)
    plan = plan_from_params(registries, data["plan"])
    shape = plan.shape
    model = plan.architecture.build(plan.model, shape)
    try:
        model.load_state_dict(data["state"])
    except (KeyError, RuntimeError) as exc:
        raise CheckpointError(
            f"{path} does not fit {plan.architecture.name} at {shape.resolution}px"
            f" ({str(exc).splitlines()[0]}); it was written by another version of the plugin"
        ) from None
    if "ema" in data:  # the run kept G's moving average: it samples, scores, exports
        averaged = copy.deepcopy(model.generator)
        try:
            averaged.load_state_dict(data["ema"]["module"])
        except (KeyError, TypeError, RuntimeError) as exc:
            raise CheckpointError(
                f"{path}: its moving average of G does not fit the generator"
                f" ({str(exc).splitlines()[0]}); the file is damaged or from another version"
            ) from None
        model.averaged_generator = averaged.eval().requires_grad_(False)
    names = tuple(str(n) for n in data.get("class_names", ()))
    if names and len(names) != model.num_classes:
        raise CheckpointError(
            f"{path} names {len(names)} classes but its model has {model.num_classes}; the"
            " file is damaged or from another version"
        )
    step = int(data.get("step", 0))
    return LoadedRun(plan, model, step, source or str(path), class_names=names)


def is_checkpoint_file(ref: str) -> bool:
    """True when ``ref`` names a checkpoint file rather than an MLflow run ID."""
    return Path(ref).suffix == ".pt" or Path(ref).is_file()


def download_checkpoint(client: MlflowClient, run_id: str, which: Which, dest: Path) -> Path:
    """Fetch the run's checkpoint artifact into ``dest`` (a folder)."""
    from mlflow.exceptions import MlflowException

    artifact = CHECKPOINT_ARTIFACTS[which]
    # one small file: MLflow's own progress bar would only clutter the output
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        return Path(client.download_artifacts(run_id, artifact, str(dest)))
    except (MlflowException, OSError) as exc:
        hint = (
            " (a best checkpoint exists only for runs trained with --eval-every)"
            if which == "best"
            else " (the run has not reached its first checkpoint)"
        )
        raise GanbenchError(
            f"run {run_id} has no {artifact}{hint}: {str(exc).splitlines()[0]}"
        ) from None


def load_run(
    ref: str, registries: Registries, which: Which = "last", client: MlflowClient | None = None
) -> LoadedRun:
    """A checkpoint file, or the checkpoint of MLflow run ``ref`` fetched with ``client``
    (from :meth:`ganbench.tracking.tracker.MlflowTracker.existing`, which checked the run)."""
    if is_checkpoint_file(ref):
        return load_checkpoint(Path(ref), registries)
    if client is None:
        raise ValueError("an MLflow client is needed to load a run by ID")
    with tempfile.TemporaryDirectory(prefix="ganbench-run-") as tmp:
        path = download_checkpoint(client, ref, which, Path(tmp))
        loaded = load_checkpoint(path, registries, f"runs:/{ref}/{CHECKPOINT_ARTIFACTS[which]}")
    loaded.run_id = ref
    return loaded


def open_run(
    ref: str, registries: Registries, which: Which, tracking_uri: str
) -> tuple[LoadedRun, MlflowTracker | None]:
    """``ref``'s model, and a tracker of that MLflow run (None when ``ref`` is a file): the
    run is looked up once, with a clear error for an unreachable store or unknown ID."""
    from ganbench.tracking.tracker import MlflowTracker

    tracker = None if is_checkpoint_file(ref) else MlflowTracker.existing(tracking_uri, ref)
    return load_run(ref, registries, which, tracker.client if tracker else None), tracker
