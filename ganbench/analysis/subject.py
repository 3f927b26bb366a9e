"""Opening what ``ganbench analyze`` looks at: a run, a training checkpoint or a generator file.

A training checkpoint (``checkpoints/last.pt``) holds both networks and the run's plan; a
generator file (``generator.pt``, written at the end of training) holds G alone and its
architecture settings. Analyses of G alone run on either; those that need D or the data
say clearly that a generator file is not enough.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ganbench.errors import CheckpointError, GanbenchError
from ganbench.plugins.interfaces import Architecture, GanModel, ImageShape
from ganbench.rundir import checkpoint
from ganbench.runs.reopen import (
    CHECKPOINT_ARTIFACTS,
    Which,
    download_checkpoint,
    load_checkpoint,
)

if TYPE_CHECKING:
    from ganbench.plugins import Registries
    from ganbench.rundir.folder import RunFolder
    from ganbench.runs.target import Target
    from ganbench.runs.weights import RunWeights
    from ganbench.tracking.tracker import MlflowTracker
    from ganbench.training.plan import RunPlan

GENERATOR_ARTIFACT = "generator.pt"


@dataclass
class Subject:
    """The networks to analyse, on the CPU, and where they came from."""

    model: GanModel
    architecture: Architecture
    model_config: Any
    shape: ImageShape
    plan: RunPlan | None
    step: int
    source: str
    has_discriminator: bool
    run_id: str | None = None


def _file_format(path: Path) -> str | None:
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # load_file below reports what is wrong with it
        return None
    return obj.get("format") if isinstance(obj, dict) else None


def load_generator_file(path: Path, registries: Registries, source: str | None = None) -> Subject:
    """A model whose generator has the weights of a ``ganbench-generator/1`` file (its
    discriminator stays freshly initialised and is marked absent)."""
    data = checkpoint.load_file(path, checkpoint.GENERATOR_FORMAT)
    architecture = registries.architectures.get(data["architecture"])
    try:
        config = architecture.config_class(**data["config"])
        channels, resolution = (int(v) for v in data["image_shape"])
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(
            f"{path} does not fit {architecture.name} ({exc}); it was written by another"
            " version of the plugin"
        ) from None
    shape = ImageShape(channels, resolution, int(data.get("num_classes", 0)))
    model = architecture.build(config, shape)
    try:
        model.generator.load_state_dict(data["state_dict"])
    except (KeyError, RuntimeError) as exc:
        raise CheckpointError(
            f"{path} does not fit {architecture.name} at {resolution}px"
            f" ({str(exc).splitlines()[0]}); it was written by another version of the plugin"
        ) from None
    step = int(data.get("steps", 0))
    return Subject(model, architecture, config, shape, None, step, source or str(path), False)


def load_training_checkpoint(
    path: Path, registries: Registries, source: str | None = None
) -> Subject:
    loaded = load_checkpoint(path, registries, source)
    plan = loaded.plan
    return Subject(
        loaded.model,
        plan.architecture,
        plan.model,
        loaded.shape,
        plan,
        loaded.step,
        loaded.source,
        True,
    )


def load_file(path: Path, registries: Registries) -> Subject:
    """A training checkpoint or a generator file, told apart by the format it records."""
    if _file_format(path) == checkpoint.GENERATOR_FORMAT:
        return load_generator_file(path, registries)
    return load_training_checkpoint(path, registries)


def open_subject(weights: RunWeights, needs_discriminator: bool) -> tuple[Subject, Target | None]:
    """``weights.ref`` (a run ID, a run folder or a file) opened, with the run to log into
    (None for a file). The run's own folder is read when it is on this machine (no download;
    the store may be away), else MLflow's artifacts.

    A run whose training checkpoint is gone (or was never written) still has its
    ``generator.pt`` after it finished: analyses of G alone use it, the others say why
    they cannot.
    """
    from ganbench.runs.target import locate
    from ganbench.tracking.tracker import MlflowTracker

    registries, which = weights.registries, weights.which
    target = locate(weights.ref, weights.tracking_uri, weights.cache)
    if target is None:
        return load_file(Path(weights.ref), registries), None
    source = f"runs:/{target.run_id}/{CHECKPOINT_ARTIFACTS[which]}"
    if target.folder is not None:
        subject = _open_local(target.folder, registries, which, needs_discriminator, source)
        if subject is not None:
            subject.run_id = target.run_id
            return subject, target
    tracker = MlflowTracker.existing(target.tracking_uri, target.run_id)
    target = replace(target, experiment_id=tracker.experiment_id)
    with tempfile.TemporaryDirectory(prefix="ganbench-analyze-") as tmp:
        try:
            path = download_checkpoint(tracker.client, target.run_id, which, Path(tmp))
        except GanbenchError as missing:
            if needs_discriminator or which == "best":
                raise GanbenchError(
                    f"{missing}; this analysis needs the discriminator, which only a training"
                    " checkpoint holds"
                ) from None
            path = _download_generator(tracker, target.run_id, Path(tmp), missing)
            subject = load_generator_file(
                path, registries, f"runs:/{target.run_id}/{GENERATOR_ARTIFACT}"
            )
        else:
            subject = load_training_checkpoint(path, registries, source)
    subject.run_id = target.run_id
    return subject, target


def _open_local(
    folder: RunFolder, registries: Registries, which: Which, needs_discriminator: bool,
    source: str,
) -> Subject | None:  # fmt: skip
    """The subject from the training's folder: its checkpoint, or (for analyses of G
    alone) its ``generator.pt``; None when the folder has neither (then MLflow is asked)."""
    from ganbench.runs.target import local_checkpoint

    for path in local_checkpoint(folder, which):
        try:
            return load_training_checkpoint(path, registries, source)
        except CheckpointError:
            continue  # a damaged newest checkpoint: the one before
    generator = folder.path / GENERATOR_ARTIFACT
    if not needs_discriminator and which == "last" and generator.is_file():
        return load_generator_file(
            generator, registries, f"runs:/{folder.run_id}/{GENERATOR_ARTIFACT}"
        )
    return None


def _download_generator(
    tracker: MlflowTracker, run_id: str, dest: Path, missing: Exception
) -> Path:
    from mlflow.exceptions import MlflowException

    try:
        return Path(tracker.client.download_artifacts(run_id, GENERATOR_ARTIFACT, str(dest)))
    except (MlflowException, OSError):
        raise GanbenchError(f"{missing}; nor has it a {GENERATOR_ARTIFACT}") from None
