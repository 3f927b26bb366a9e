"""``ganbench probe``: the DCGAN paper's representation probe on a trained discriminator.

The trained discriminator's features are scored next to those of a randomly initialised
discriminator of the same architecture (the paper's baseline), and both go into the run,
through a command outbox (:mod:`ganbench.tracking.outbox.command`) that keeps them on disk, in
``probe/PREFIX.json``, until the store has them.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import click

from ganbench.cli.run_options import checkpoint_option, device_option, logged_run_options

if TYPE_CHECKING:
    from ganbench.runs.reopen import Which


def _c_grid(_ctx: click.Context, _param: click.Parameter, value: str | None):
    if value is None:
        return None
    try:
        grid = tuple(float(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of numbers") from None
    if not grid or min(grid) <= 0:
        raise click.BadParameter(f"C values must be positive numbers, not {value!r}")
    return grid


@click.command()
@click.argument("run_ref", metavar="RUN_ID|CHECKPOINT")
@click.option("--dataset", "-d", required=True, help="Labelled dataset to probe on (cifar10...).")
@click.option("--train-split", default="train", show_default=True, help="Labelled split.")
@click.option("--test-split", default="test", show_default=True, help="Split scored.")
@click.option(
    "--labels-per-class",
    type=int,
    help="Use only this many labels per class, redrawn --draws times (mean, spread and the"
    " mean's t interval).",
)
@click.option("--draws", type=int, default=None, help="Test draws of the labels [default: 10].")
@click.option(
    "--select-draws",
    type=int,
    default=None,
    help="Draws per C when choosing it on the validation set [default: 10 with"
    " --labels-per-class (the authors'), else 1].",
)
@click.option(
    "--val-size",
    type=int,
    default=None,
    help="Training images held out to choose C [default: 10,000 (the authors') where the"
    " split has 20,000 or more, else a fifth].",
)
@click.option(
    "--val-split",
    default=None,
    help="The dataset's own validation split instead of --val-size (svhn: valid, with"
    " --train-split train-minus-valid, the authors' split).",
)
@click.option(
    "--c-grid",
    callback=_c_grid,
    default=None,
    help="Comma-separated C values [default: the authors' 1e-4,2e-4,5e-4,1e-3,2e-3,5e-3,1e-2].",
)
@click.option(
    "--standardize/--raw-features",
    default=False,
    show_default=True,
    help="Standardise features before the SVM (the authors fed them raw).",
)
@click.option(
    "--bn-stats",
    type=click.Choice(["real", "running"]),
    default="real",
    show_default=True,
    help="Batchnorm statistics of both discriminators: recomputed on the real training"
    " images (the authors') or the running ones from training (initial for random init).",
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
    select_draws: int | None,
    val_size: int | None,
    val_split: str | None,
    c_grid: tuple[float, ...] | None,
    standardize: bool,
    bn_stats: str,
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
    The authors' protocol (Newmu/dcgan_code, svhn_semisup_analysis.py): batchnorm
    statistics recomputed on real training images, C chosen on held-out validation images
    by the accuracy averaged over --select-draws draws, then --draws new draws scored on
    the test split. The trained and the random-init D see the same draws: their difference
    is reported paired (t interval and sign test).

    \b
    Example (the paper's CIFAR-10 and SVHN setups):
      ganbench probe RUN_ID --dataset cifar10
      ganbench probe RUN_ID --dataset svhn --labels-per-class 100 --draws 100 \\
          --train-split train-minus-valid --val-split valid
    """
    from ganbench.cli.probe_run import ProbeOptions, probe_run
    from ganbench.runs.weights import RunWeights

    say = functools.partial(click.echo, err=True)
    weights = RunWeights(run_ref, checkpoint, tracking_uri, cache_dir, device, say)
    options = ProbeOptions(
        dataset, train_split, test_split, labels_per_class, draws, select_draws, val_size,
        val_split, c_grid, standardize, bn_stats, baseline, seed, data_root, bad_images,
    )  # fmt: skip
    probe_run(weights, options, tracking_wait=tracking_wait, progress=progress)
