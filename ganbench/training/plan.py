"""Turning what the user asked for into one resolved, validated run plan.

Layers, each overriding the one before: the runner's defaults, the architecture's
defaults, the architecture's preset for the dataset, a ``--config`` TOML file, ``--set``
pairs, and last the dedicated CLI flags (``--steps``, ``--batch-size``, ...).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ganbench import hparams as cfg
from ganbench.errors import ConfigError, UsageError
from ganbench.plugins import Registries
from ganbench.plugins.interfaces import Architecture, Dataset, DatasetRequest, ImageShape
from ganbench.training.config import LENGTH_KEYS, TrainConfig


@dataclass
class RunPlan:
    """Everything a run needs, resolved: which plugins, and every hyperparameter."""

    architecture: Architecture
    dataset: Dataset
    train: TrainConfig
    model: Any

    @property
    def shape(self) -> ImageShape:
        """The images the run's networks make and see, and the classes their labels name
        (the dataset's; 0 where it has none)."""
        return ImageShape(
            self.dataset.channels, self.train.resolution, self.dataset.num_classes or 0
        )

    def request(self, data_root: str | None = None) -> DatasetRequest:
        """What to ask the dataset plugin for."""
        options = {"category": self.train.category} if self.train.category else {}
        return DatasetRequest(self.train.split, self.train.resolution, data_root, options)

    def params(self) -> dict[str, str]:
        """Every hyperparameter, for MLflow."""
        return {
            "architecture": self.architecture.name,
            "dataset": self.dataset.name,
            **cfg.as_params(self.train),
            **cfg.as_params(self.model),
        }


def plan_run(
    registries: Registries,
    architecture: str,
    dataset: str,
    layers: Sequence[tuple[str, Mapping[str, Any]]] = (),
    *,
    check_scoring: bool = True,
) -> RunPlan:
    """Resolve names and layer the settings; ``layers`` are (source, values) pairs.

    ``check_scoring``: refuse scores during training that cannot be computed (FID from
    too few samples); off for a finished run's plan, rebuilt to score it another way.
    """
    arch = registries.architectures.get(architecture)
    data = registries.datasets.get(dataset)
    train_keys = set(cfg.field_names(TrainConfig))
    model_keys = set(cfg.field_names(arch.config_class))
    clash = train_keys & model_keys
    if clash:
        raise ConfigError(
            f"architecture {arch.name!r} defines hyperparameters that clash with the"
            f" runner's: {', '.join(sorted(clash))}; the plugin must rename them"
        )
    all_layers = [
        (f"{arch.name}'s defaults", arch.train_defaults),
        (f"{arch.name}'s preset for {data.name}", arch.preset(data.name)),
        *layers,
    ]
    train, model = TrainConfig(), arch.config_class()
    for source, values in all_layers:
        unknown = [k for k in values if k not in train_keys | model_keys]
        if unknown:
            raise cfg.unknown_key(unknown[0], train_keys | model_keys, source)
        train = cfg.apply(
            train, {k: v for k, v in values.items() if k in train_keys}, source=source
        )
        model = cfg.apply(
            model, {k: v for k, v in values.items() if k in model_keys}, source=source
        )
        given = [k for k in LENGTH_KEYS if values.get(k) is not None]
        if len(given) > 1:
            raise UsageError(
                f"{source} sets {' and '.join(given)}: the length of training is one of"
                " steps, epochs or d_steps; give one of them"
            )
        for key in given:  # the later-given of steps/epochs/d_steps decides the length
            train = dataclasses.replace(train, **{k: None for k in LENGTH_KEYS if k != key})
    if train.resolution is None:
        train = dataclasses.replace(train, resolution=data.default_resolution)
    if train.category is None and data.categories:
        train = dataclasses.replace(train, category=data.categories[0])
    # Every numeric setting within its declared range (``ganbench.hparams.ranged``),
    # defaults included: each given value was checked as it was applied.
    cfg.check_ranges(train, "the run's settings")
    cfg.check_ranges(model, f"{arch.name}'s settings")
    _validate(arch, data, train)
    arch.check(model, ImageShape(data.channels, train.resolution, data.num_classes or 0))
    if check_scoring:
        _check_scoring(registries, data, train)
    return RunPlan(architecture=arch, dataset=data, train=train, model=model)


def _validate(arch: Architecture, data: Dataset, train: TrainConfig) -> None:
    r = train.resolution
    if r not in arch.supported_resolutions():
        raise UsageError(
            f"{arch.name} cannot be built at resolution {r}; use one of"
            f" {', '.join(map(str, arch.supported_resolutions()))}"
        )
    if r not in data.resolutions:
        raise UsageError(
            f"dataset {data.name} is not offered at resolution {r}; use one of"
            f" {', '.join(map(str, data.resolutions))}"
        )
    if train.split not in data.splits:
        raise UsageError(
            f"dataset {data.name} has no split {train.split!r}; use one of {', '.join(data.splits)}"
        )
    if train.eval_split and train.eval_split not in data.splits:
        raise UsageError(
            f"eval_split {train.eval_split!r}: dataset {data.name} has no such split; use"
            f" one of {', '.join(data.splits)}, or leave it empty for the split it trains on"
        )
    if train.category and not data.categories:
        raise UsageError(f"dataset {data.name} has no categories; drop --category")
    # (numeric ranges: declared with the fields, checked as each value is applied)
    if train.eval_every and train.eval_samples < 10:
        raise UsageError(f"eval_samples must be at least 10, not {train.eval_samples}")


def _check_scoring(registries: Registries, data: Dataset, train: TrainConfig) -> None:
    """FID during training from no more samples than its extractor's feature dimension,
    refused before any weights are loaded or any step is trained (``ganbench run`` and
    every trial of a study)."""
    if not train.eval_every:
        return
    from ganbench.metrics.counts import TRAINING_FIX, check_covariance_counts

    names = [n.strip() for n in train.eval_metrics.split(",") if n.strip()]
    # unknown names are the scorer's to report, with the close matches
    metrics = [registries.metrics.get(n) for n in names if n in registries.metrics]
    if not any(m.fits_covariance for m in metrics):
        return
    extractor = registries.extractors.get(train.eval_extractor or data.default_extractor)
    check_covariance_counts(
        metrics, extractor.name, extractor.feature_dims, train.eval_samples, fix=TRAINING_FIX
    )
