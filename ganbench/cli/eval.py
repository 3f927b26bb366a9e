"""``ganbench eval``: score a trained run's generator and log the scores into that run.

The scores go under ``eval/`` (``eval/fid_50k``) at the checkpoint's step, with their
provenance in ``scoring/eval-TIME-PID-step-N.json``: the training's own values and its
``scoring/step-N.json`` at that step stay as the training logged them (see
:mod:`ganbench.metrics.scoring`). They reach MLflow through a command outbox
(:mod:`ganbench.tracking.outbox.command`), which keeps them on disk until the store has them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ganbench.cli.run_options import checkpoint_option, device_option, logged_run_options
from ganbench.errors import UsageError

if TYPE_CHECKING:
    from ganbench.metrics.scoring import Evaluation
    from ganbench.runs.reopen import LoadedRun, Which
    from ganbench.runs.target import Target


def scoring_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by ``eval`` and ``run --eval-every``: which extractor, which weights."""
    f = click.option(
        "--inception-weights",
        type=click.Path(dir_okay=False),
        envvar="GANBENCH_INCEPTION_WEIGHTS",
        help="Local Inception-v3 weights file (offline machines)."
        " [default: $GANBENCH_INCEPTION_WEIGHTS, or torch-fidelity's download]",
    )(f)
    f = click.option(
        "--extractor",
        help="Feature extractor (default: the dataset's: digits-cnn for digits,"
        " inception-v3 otherwise). Scores from different extractors are never comparable.",
    )(f)
    return f


@click.command(name="eval")
@click.argument("run_ref", metavar="RUN_ID|CHECKPOINT")
@click.option(
    "--metrics",
    default="fid,is",
    show_default=True,
    help="Comma-separated: fid, is, kid, prc; for a class-conditional generator also"
    " intra_fid and class_accuracy (the dataset's classifier: digits-cnn on digits).",
)
@click.option(
    "--generator",
    "which_generator",
    type=click.Choice(["auto", "ema", "live"]),
    default="auto",
    show_default=True,
    help="Which generator of a run that kept G's moving average (ema): auto scores the"
    " average (what the run sampled and scored), live scores G itself, logged as"
    " eval/live/NAME.",
)
@click.option(
    "--samples", "-n", type=int, default=50_000, show_default=True, help="Generated images."
)
@click.option(
    "--real-samples", type=int, help="Real images for the reference (default: the whole split)."
)
@checkpoint_option()
@click.option(
    "--split",
    help="Reference split (default: the run's eval_split, else the split it trained on;"
    " compare_gan and StudioGAN score FID against test).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the latents.")
@device_option()
@scoring_options
@logged_run_options
def eval_command(
    run_ref: str,
    metrics: str,
    which_generator: str,
    samples: int,
    real_samples: int | None,
    checkpoint: Which,
    split: str | None,
    seed: int,
    device: str,
    extractor: str | None,
    inception_weights: str | None,
    data_root: str | None,
    cache_dir: str | None,
    bad_images: str,
    tracking_uri: str | None,
    tracking_wait: float,
    progress: bool,
) -> None:
    """Score a run's generator (FID, IS, KID, precision/recall) and log it into the run.

    \b
    RUN_ID is an MLflow run ID (its checkpoint is read from the run's folder when it is on
    this machine, else fetched from the store) or a run folder; a path to a checkpoint
    file is scored without logging anywhere. The scores go into the run as eval/NAME at
    the checkpoint's step (the training's own NAME values stay as they are), and into
    CACHE/outbox/RUN_ID-eval-TIME-PID/scoring/ here.

    \b
    Example:
      ganbench eval 3f9f22e9... --metrics fid,is --samples 10000
    """
    from ganbench.metrics.session import make_scorer
    from ganbench.runs.weights import RunWeights

    say = functools.partial(click.echo, err=True)
    weights = RunWeights(run_ref, checkpoint, tracking_uri, cache_dir, device, say)
    torch_device = weights.torch_device
    loaded, target = weights.open()
    prefix = _choose_generator(loaded, which_generator)
    scorer = make_scorer(
        weights.registries,
        loaded.plan,
        data_root=data_root,
        cache_dir=cache_dir,
        metrics=metrics,
        extractor=extractor,
        inception_weights=inception_weights,
        samples=samples,
        real_samples=real_samples,
        device=torch_device,
        seed=seed,
        bad_images=bad_images,  # type: ignore[arg-type]
        progress=progress,
        say=say,
        split=split,
        num_classes=loaded.model.num_classes,
    )
    loaded.model.to(torch_device)
    result = scorer.score(loaded.model, f"{loaded.source} (step {loaded.step})")
    for line in result.lines():
        click.echo(line)
    if target is not None:
        record_scores(result, loaded, target, weights.cache, tracking_wait, prefix)


def _choose_generator(loaded: LoadedRun, which: str) -> str:
    """Keep the generator ``which`` names on ``loaded``; the prefix its scores go under."""
    from ganbench.metrics.scoring import EVAL_PREFIX

    if which == "ema" and loaded.generator != "ema":
        raise UsageError(
            f"{loaded.source} kept no moving average of G (the run trained with ema=0);"
            " score it with --generator auto or live"
        )
    if which == "live" and loaded.generator == "ema":
        loaded.model.averaged_generator = None
        return f"{EVAL_PREFIX}live/"
    return EVAL_PREFIX


def record_scores(
    result: Evaluation,
    loaded: LoadedRun,
    target: Target,
    cache: Path,
    wait: float,
    prefix: str | None = None,
) -> None:
    """Save the scores and their provenance in a command outbox, then journal them into
    the run under ``eval/``; one line says where they went (or wait)."""
    from ganbench.metrics.scoring import EVAL_PREFIX, PROVENANCE_DIR, eval_provenance_name
    from ganbench.tracking.outbox.command import CommandOutbox

    step = loaded.step
    prefix = prefix or EVAL_PREFIX
    logged = result.prefixed(prefix)
    outbox = CommandOutbox(target, "eval", cache, keep=True)
    name = eval_provenance_name(step, outbox.stamp)
    how = logged.write_provenance(
        outbox.path / PROVENANCE_DIR / name, step=step, source=loaded.source
    )
    click.echo(f"saved the scores and how they were measured in {how}")
    outbox.tracker.log_metrics(logged.scores, step)
    outbox.tracker.set_tags(logged.tags)
    outbox.tracker.log_artifact(how, PROVENANCE_DIR)
    outbox.finish(wait, f"scored {loaded.source} (step {step}); the scores are saved in {how}")
    click.echo(f"logged into {outbox.describe()} at step {step} as {prefix}NAME")
