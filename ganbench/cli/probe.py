"""``ganbench probe``: the DCGAN paper's representation probe on a trained discriminator.

The trained discriminator's features are scored next to those of a randomly initialised
discriminator of the same architecture (the paper's baseline), and both go into the run,
through a command outbox (:mod:`ganbench.tracking.outbox.command`) that keeps them on disk, in
``probe/PREFIX.json``, until the store has them.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ganbench.cli.run_options import checkpoint_option, device_option, logged_run_options

if TYPE_CHECKING:
    from ganbench.runs.reopen import Which
    from ganbench.runs.target import Target


def probe_metrics(prefix: str, result: object) -> dict[str, float]:
    """A probe result as MLflow metrics under ``prefix``."""
    return {
        f"{prefix}.accuracy": result.accuracy,
        f"{prefix}.error_rate": result.error_rate,
        f"{prefix}.accuracy_ci95": result.accuracy_ci95,
        f"{prefix}.feature_dim": float(result.feature_dim),
        f"{prefix}.labels_used": float(result.labels_used),
        f"{prefix}.c": float(result.C),
        f"{prefix}.val_accuracy": result.val_accuracy,
        f"{prefix}.extract_seconds": result.extract_seconds,
        f"{prefix}.fit_seconds": result.fit_seconds,
    }


@click.command()
@click.argument("run_ref", metavar="RUN_ID|CHECKPOINT")
@click.option("--dataset", "-d", required=True, help="Labelled dataset to probe on (cifar10...).")
@click.option("--train-split", default="train", show_default=True, help="Labelled split.")
@click.option("--test-split", default="test", show_default=True, help="Split scored.")
@click.option(
    "--labels-per-class",
    type=int,
    help="Use only this many labels per class, redrawn --draws times (mean +- 1.96 sigma).",
)
@click.option("--draws", type=int, default=None, help="Random labelled subsets [default: 10].")
@click.option(
    "--val-fraction",
    type=float,
    default=0.1,
    show_default=True,
    help="Share of the labelled images held out to choose C.",
)
@checkpoint_option(help=None)
@click.option("--baseline/--no-baseline", default=True, help="Also probe a random-init D.")
@click.option("--seed", type=int, default=0, show_default=True)
@device_option()
@logged_run_options
def probe(
    run_ref: str,
    dataset: str,
    train_split: str,
    test_split: str,
    labels_per_class: int | None,
    draws: int | None,
    val_fraction: float,
    checkpoint: Which,
    baseline: bool,
    seed: int,
    device: str,
    data_root: str | None,
    cache_dir: str | None,
    bad_images: str,
    tracking_uri: str | None,
    tracking_wait: float,
    progress: bool,
) -> None:
    """Linear L2-SVM on the discriminator's features (every conv layer, 4x4 max-pooled).

    \b
    Example (the paper's CIFAR-10 and SVHN setups):
      ganbench probe RUN_ID --dataset cifar10
      ganbench probe RUN_ID --dataset svhn --labels-per-class 100 --draws 100
    """
    import torch

    from ganbench.data.loading import load_images
    from ganbench.errors import UsageError
    from ganbench.plugins.interfaces import DatasetRequest
    from ganbench.probe.features import LayerFeatures
    from ganbench.probe.probe import run_probe
    from ganbench.runs.weights import RunWeights

    say = functools.partial(click.echo, err=True)
    weights = RunWeights(run_ref, checkpoint, tracking_uri, cache_dir, device, say)
    ds = weights.registries.datasets.get(dataset)
    torch_device = weights.torch_device
    if labels_per_class is not None and labels_per_class < 1:
        raise UsageError(f"--labels-per-class must be at least 1, not {labels_per_class}")
    if draws is not None and labels_per_class is None:
        raise UsageError("--draws needs --labels-per-class (with every label, draws are equal)")
    draws = draws or (10 if labels_per_class else 1)
    if draws < 1:
        raise UsageError(f"--draws must be at least 1, not {draws}")
    if not ds.num_classes:
        raise UsageError(f"dataset {ds.name} has no class labels to probe with; use a labelled one")
    for split in (train_split, test_split):
        ds.check_split(split)
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
    category = {"category": ds.categories[0]} if ds.categories else {}
    train, test = (
        load_images(
            ds,
            DatasetRequest(split, shape.resolution, data_root, category),
            weights.cache,
            bad_images=bad_images,  # type: ignore[arg-type]
            progress=progress,
            say=say,
        )
        for split in (train_split, test_split)
    )
    options = dict(
        labels_per_class=labels_per_class,
        draws=draws,
        val_fraction=val_fraction,
        seed=seed,
        device=torch_device,
        progress=progress,
    )
    suffix = f".{labels_per_class}_per_class" if labels_per_class else ""
    prefix = f"probe.{ds.name}{suffix}"
    models = {"trained": loaded.model}
    if baseline:
        torch.manual_seed(seed)
        models["random_init"] = loaded.plan.architecture.build(loaded.plan.model, shape)
    metrics, lines = {}, []
    for which, model in models.items():
        disc = model.discriminator.to(torch_device).eval()
        say(f"probing the {which.replace('_', '-')} discriminator on {ds.name}")
        features = LayerFeatures(disc, model.discriminator_layers())
        result = run_probe(features, train, test, **options)
        name = prefix if which == "trained" else f"{prefix}.random_init"
        metrics.update(probe_metrics(name, result))
        ci = f" +- {100 * result.accuracy_ci95:.2f}" if result.draws > 1 else ""
        lines.append(
            f"{which:>11}: accuracy {100 * result.accuracy:.2f}%{ci} (error"
            f" {100 * result.error_rate:.2f}%), {result.feature_dim} features,"
            f" {result.labels_used} labels, C={result.C:g}, {result.draws} draw(s),"
            f" features {result.extract_seconds:.1f}s, fit {result.fit_seconds:.1f}s"
        )
    for line in lines:
        click.echo(line)
    if target is None:
        return
    tags = {
        f"{prefix}.how": (
            "linear L2-SVM (squared hinge, one-vs-rest, torch solver) on every"
            " discriminator conv layer max-pooled to 4x4; C chosen on a"
            f" {val_fraction:g} validation share of the labelled {train_split} split;"
            f" scored on {ds.name} {test_split} ({len(test)} images);"
            f" {draws} draw(s), seed {seed}; weights {loaded.source}"
        )
    }
    record = {"step": loaded.step, "source": loaded.source, "metrics": metrics, "tags": tags}
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
