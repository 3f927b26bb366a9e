"""What ``ganbench probe`` does once its options are read: load the run's discriminator
and the labelled splits, recompute batchnorm statistics, probe the trained and a
random-init discriminator on the same draws, compare them paired, and record it all.

The results go into the run through a command outbox
(:mod:`ganbench.tracking.outbox.command`) that keeps them on disk, in
``probe/PREFIX.json``, until the store has them.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from ganbench.plugins.interfaces import Dataset, ImageArray
    from ganbench.runs.target import Target
    from ganbench.runs.weights import RunWeights


BN_STATS = {"real": "recomputed on real training images", "running": "running (from training)"}


@dataclass(frozen=True)
class ProbeOptions:
    """The protocol's choices, as the command line gave them."""

    dataset: str
    train_split: str
    test_split: str
    labels_per_class: int | None
    draws: int | None
    select_draws: int | None
    val_size: int | None
    val_split: str | None
    c_grid: tuple[float, ...] | None
    standardize: bool
    bn_stats: str
    baseline: bool
    seed: int
    data_root: str | None
    bad_images: str


def _check(o: ProbeOptions, ds: Dataset) -> int:
    """One-line refusals before anything is loaded; the number of test draws."""
    from ganbench.errors import UsageError

    if o.labels_per_class is not None and o.labels_per_class < 1:
        raise UsageError(f"--labels-per-class must be at least 1, not {o.labels_per_class}")
    if o.labels_per_class is None and (o.draws is not None or o.select_draws not in (None, 1)):
        raise UsageError(
            "--draws and --select-draws need --labels-per-class (with every label, draws are equal)"
        )
    draws = o.draws or (10 if o.labels_per_class else 1)
    if draws < 1 or (o.select_draws is not None and o.select_draws < 1):
        raise UsageError("--draws and --select-draws must be at least 1")
    if o.val_split is not None and o.val_size is not None:
        raise UsageError("--val-size and --val-split exclude each other; give one")
    if not ds.num_classes:
        raise UsageError(f"dataset {ds.name} has no class labels to probe with; use a labelled one")
    for split in (o.train_split, o.test_split, o.val_split):
        if split is not None:
            ds.check_split(split)
    return draws


def _splits(
    o: ProbeOptions, ds: Dataset, resolution: int, loader: Any
) -> tuple[ImageArray, ImageArray, ImageArray, str]:
    """(pool, validation, test, how the validation set was made)."""
    from ganbench.plugins.interfaces import DatasetRequest
    from ganbench.probe.draws import default_val_size, hold_out

    category = {"category": ds.categories[0]} if ds.categories else {}

    def load(split: str) -> ImageArray:
        return loader(DatasetRequest(split, resolution, o.data_root, category))

    train, test = load(o.train_split), load(o.test_split)
    if o.val_split is not None:
        val = load(o.val_split)
        return train, val, test, f"{ds.name} {o.val_split} split ({len(val.images)} images)"
    size = o.val_size if o.val_size is not None else default_val_size(len(train.images))
    pool, val = hold_out(train, size, o.seed)
    how = f"{size} images held out of {o.train_split} at random (seed {o.seed})"
    return pool, val, test, how


def probe_run(
    weights: RunWeights, o: ProbeOptions, *, tracking_wait: float, progress: bool
) -> None:
    """Probe the run ``weights`` names as ``o`` says, and record the result in the run."""
    import torch

    from ganbench.data.loading import load_images
    from ganbench.errors import UsageError
    from ganbench.probe.features import LayerFeatures
    from ganbench.probe.paired import compare_paired
    from ganbench.probe.probe import AUTHORS_C_GRID, run_probe
    from ganbench.probe.record import describe, paired_metrics, probe_metrics, result_record
    from ganbench.probe.standing import recalibrate_batchnorm

    say = functools.partial(click.echo, err=True)
    ds = weights.registries.datasets.get(o.dataset)
    draws = _check(o, ds)
    weights.torch_device  # noqa: B018 (a GPU asked for and absent: refused before loading)
    loaded, target = weights.open()
    shape = loaded.shape
    if ds.channels != shape.channels:
        raise UsageError(
            f"the run's discriminator takes {shape.channels}-channel images but {ds.name} has"
            f" {ds.channels}; probe it on a dataset with {shape.channels} channel(s)"
        )
    if shape.resolution not in ds.resolutions:
        raise UsageError(
            f"the run's discriminator takes {shape.resolution}px images; {ds.name} is offered"
            f" at {', '.join(map(str, ds.resolutions))}"
        )
    loader = functools.partial(
        load_images, ds, cache=weights.cache, bad_images=o.bad_images, progress=progress, say=say
    )
    pool, val, test, val_how = _splits(o, ds, shape.resolution, loader)
    grid = o.c_grid or AUTHORS_C_GRID
    suffix = f".{o.labels_per_class}_per_class" if o.labels_per_class else ""
    prefix = f"probe.{ds.name}{suffix}"
    models = {"trained": loaded.model}
    if o.baseline:
        torch.manual_seed(o.seed)
        models["random_init"] = loaded.plan.architecture.build(loaded.plan.model, shape)
    metrics: dict[str, float] = {}
    lines, results, records = [], {}, {}
    for which, model in models.items():
        disc = model.discriminator.to(weights.torch_device).eval()
        say(f"probing the {which.replace('_', '-')} discriminator on {ds.name}")
        bn_layers = 0
        if o.bn_stats == "real":
            done = recalibrate_batchnorm(disc, pool.images, weights.torch_device, progress=progress)
            bn_layers = done.layers
            say(f"  {done.describe()}")
        result = run_probe(
            LayerFeatures(disc, model.discriminator_layers()), pool, val, test,
            labels_per_class=o.labels_per_class, draws=draws, select_draws=o.select_draws,
            seed=o.seed, device=weights.torch_device, c_grid=grid, standardize=o.standardize,
            progress=progress,
        )  # fmt: skip
        name = prefix if which == "trained" else f"{prefix}.random_init"
        metrics.update(probe_metrics(name, result, bn_layers))
        results[which], records[which] = result, result_record(result)
        lines.append(describe(which, result))
    if "random_init" in results:
        paired = compare_paired(results["trained"].accuracies, results["random_init"].accuracies)
        metrics.update(paired_metrics(prefix, paired))
        records["paired"] = paired.as_dict()
        lines.append(paired.describe("trained", "random-init"))
    for line in lines:
        click.echo(line)
    if target is None:
        return
    how = (
        "linear L2-SVM (squared hinge, one-vs-rest) on every discriminator conv layer"
        f" max-pooled to 4x4, {'standardised' if o.standardize else 'raw'} features;"
        f" batchnorm statistics: {BN_STATS[o.bn_stats]};"
        f" validation: {val_how}; C from {','.join(f'{c:g}' for c in grid)} by validation"
        f" accuracy averaged over {results['trained'].select_draws} draw(s); scored on"
        f" {ds.name} {o.test_split} ({len(test.images)} images) over {draws} draw(s), seed"
        f" {o.seed}; weights {loaded.source}"
    )
    tags = {f"{prefix}.how": how, f"{prefix}.bn_stats": o.bn_stats}
    record = {
        "step": loaded.step,
        "source": loaded.source,
        "metrics": metrics,
        "tags": tags,
        "results": records,
    }
    record_probe(record, prefix, loaded.step, target, weights.cache, tracking_wait)


def record_probe(
    record: dict, prefix: str, step: int, target: Target, cache: Path, wait: float
) -> None:
    """Save the probe's result in a command outbox, then journal it into the run."""
    from ganbench.files.sealed import write_atomic
    from ganbench.tracking.outbox.command import CommandOutbox

    outbox = CommandOutbox(target, "probe", cache, keep=True)
    path = outbox.path / "probe" / f"{prefix}.json"
    write_atomic(path, json.dumps(record, indent=1, sort_keys=True))
    click.echo(f"saved the result in {path}")
    outbox.tracker.log_metrics(record["metrics"], step)
    outbox.tracker.set_tags(record["tags"])
    outbox.tracker.log_artifact(path, "probe")
    outbox.finish(wait, f"probed {record['source']} (step {step}); the result is saved in {path}")
    click.echo(f"logged into {outbox.describe()} at step {step}")
