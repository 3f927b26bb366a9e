"""A recipe against the installed plugins, before anything runs: the training resolves
to a run plan (as ``ganbench run`` would plan it), every probe's dataset can be probed
with that run's discriminator, and the data every remaining step reads is on disk.

A missing dataset is found here, in one line naming its download command, before a
claim folder, an MLflow store or a run is created.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ganbench.claims.recipe import ProbeSpec, Recipe, text
from ganbench.errors import DatasetNotFoundError, GanbenchError, UsageError
from ganbench.plugins.interfaces import Dataset, DatasetRequest


def plan_training(recipe: Recipe, registries: Any) -> Any:
    """The run plan of the recipe's training (``ganbench.training.plan.RunPlan``)."""
    from ganbench.training.plan import plan_run

    t = recipe.train
    layers = [(f"{recipe.source}: [train]", {k: text(v) for k, v in t.settings.items()})]
    try:
        return plan_run(registries, t.architecture, t.dataset, layers)
    except GanbenchError as exc:
        if not str(exc).startswith(recipe.source):
            exc.args = (f"{recipe.source}: [train]: {exc}",)
        raise


def splits_of(probe: ProbeSpec) -> list[str]:
    """The splits a probe reads: its labelled pool, its test split, its validation split."""
    o = probe.options
    return [o.get("train_split", "train"), o.get("test_split", "test")] + (
        [o["val_split"]] if "val_split" in o else []
    )


def check_probes(recipe: Recipe, plan: Any, registries: Any) -> None:
    """Each probe's dataset is labelled, has its splits, and fits the run's D."""
    channels, resolution = plan.dataset.channels, plan.train.resolution
    for probe in recipe.probes:
        where = f"{recipe.source}: [[probe]] {probe.name!r}"
        try:
            ds: Dataset = registries.datasets.get(probe.dataset)
            for split in splits_of(probe):
                ds.check_split(split)
        except GanbenchError as exc:
            exc.args = (f"{where}: {exc}",)
            raise
        if not ds.num_classes:
            raise UsageError(f"{where}: dataset {ds.name} has no class labels to probe with")
        if ds.channels != channels:
            raise UsageError(
                f"{where}: the run's discriminator takes {channels}-channel images but"
                f" {ds.name} has {ds.channels}"
            )
        if resolution not in ds.resolutions:
            raise UsageError(
                f"{where}: the run trains at {resolution}px; {ds.name} is offered at"
                f" {', '.join(map(str, ds.resolutions))}"
            )


def missing_data(
    needed: Iterable[tuple[Dataset, DatasetRequest]], data_root: str | None, cache: Path
) -> list[str]:
    """The one-line message of each (dataset, split) whose files are absent (opening a
    split reads no images; an ImageNet folder is listed, which takes a while)."""
    from ganbench.data.paths import dataset_root

    missing, seen = [], set()
    for ds, request in needed:
        if (ds.name, request.split) in seen:
            continue
        seen.add((ds.name, request.split))
        try:
            ds.open(request, dataset_root(ds.name, data_root, cache))
        except DatasetNotFoundError as exc:
            missing.append((f"{ds.name} {request.split}", str(exc)))
    if not missing:
        return []
    first = missing[0][1]
    others = [what for what, _ in missing[1:]]
    return [first + (f" (also missing: {', '.join(others)})" if others else "")]


def needed_data(
    recipe: Recipe, plan: Any, registries: Any, data_root: str | None, *, train: bool,
    probes: Iterable[ProbeSpec],
) -> list[tuple[Dataset, DatasetRequest]]:  # fmt: skip
    """What the remaining work reads: the training split (unless trained), each probe's."""
    needed = [(plan.dataset, plan.request(data_root))] if train else []
    for probe in probes:
        ds = registries.datasets.get(probe.dataset)
        category = {"category": ds.categories[0]} if ds.categories else {}
        for split in splits_of(probe):
            needed.append((ds, DatasetRequest(split, plan.train.resolution, data_root, category)))
    return needed
