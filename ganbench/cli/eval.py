"""``ganbench eval``: score a trained run's generator and log the scores into that run."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from ganbench.cli.data import data_options


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


def tracking_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--tracking-uri",
        envvar="MLFLOW_TRACKING_URI",
        help="MLflow store or server. [default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db]",
    )(f)


@click.command(name="eval")
@click.argument("run_ref", metavar="RUN_ID|CHECKPOINT")
@click.option(
    "--metrics", default="fid,is", show_default=True, help="Comma-separated: fid, is, kid, prc."
)
@click.option(
    "--samples", "-n", type=int, default=50_000, show_default=True, help="Generated images."
)
@click.option(
    "--real-samples", type=int, help="Real images for the reference (default: the whole split)."
)
@click.option(
    "--checkpoint",
    type=click.Choice(["last", "best"]),
    default="last",
    show_default=True,
    help="Which checkpoint of the run (best: the best FID under --eval-every).",
)
@click.option(
    "--split",
    help="Reference split (default: the run's eval_split, else the split it trained on;"
    " compare_gan and StudioGAN score FID against test).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the latents.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda[:N].")
@scoring_options
@data_options
@tracking_option
@click.option("--progress/--no-progress", default=True)
def eval_command(
    run_ref: str,
    metrics: str,
    samples: int,
    real_samples: int | None,
    checkpoint: str,
    split: str | None,
    seed: int,
    device: str,
    extractor: str | None,
    inception_weights: str | None,
    data_root: str | None,
    cache_dir: str | None,
    bad_images: str,
    tracking_uri: str | None,
    progress: bool,
) -> None:
    """Score a run's generator (FID, IS, KID, precision/recall) and log it into the run.

    \b
    RUN_ID is an MLflow run ID (its checkpoint is fetched from the store); a path to a
    checkpoint file is scored without logging anywhere.
    Example:
      ganbench eval 3f9f22e9... --metrics fid,is --samples 10000
    """
    from ganbench.devices import resolve_device
    from ganbench.metrics.session import make_scorer
    from ganbench.plugins import load_registries
    from ganbench.runs import open_run
    from ganbench.tracking import resolve_tracking_uri

    registries = load_registries()
    uri = resolve_tracking_uri(tracking_uri)
    torch_device = resolve_device(device)
    say = functools.partial(click.echo, err=True)
    loaded, tracker = open_run(run_ref, registries, checkpoint, uri)  # type: ignore[arg-type]
    scorer = make_scorer(
        registries,
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
    )
    loaded.model.to(torch_device)
    result = scorer.score(loaded.model, f"{loaded.source} (step {loaded.step})")
    for line in result.lines():
        click.echo(line)
    if tracker is not None:
        import tempfile
        from pathlib import Path

        from ganbench.metrics.scoring import PROVENANCE_DIR, provenance_name

        tracker.log_metrics(result.scores, loaded.step)
        tracker.set_tags(result.tags)
        with tempfile.TemporaryDirectory() as tmp:
            how = Path(tmp) / provenance_name(loaded.step)
            result.write_provenance(how, step=loaded.step, source=loaded.source)
            tracker.log_artifact(how, PROVENANCE_DIR)
        click.echo(f"logged into {tracker.describe()} at step {loaded.step}")
