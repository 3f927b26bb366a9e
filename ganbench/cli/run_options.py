"""The options of the commands that read a trained run's weights and log into the run
(``eval``, ``probe``, ``analyze``, ``zoo export`` and ``publish``; ``--tracking-uri`` and
``--tracking-wait`` also serve ``runs``, ``sync`` and ``study``), written once.

What the options name is opened by :class:`ganbench.runs.weights.RunWeights`. Importing
this module imports neither torch nor MLflow (``ganbench --help`` and the zoo's runtime
commands import it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from ganbench.cli.data import data_options

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

CHECKPOINT_HELP = "Which checkpoint of the run (best: the best FID under --eval-every)."
DEVICE_HELP = "auto, cpu or cuda[:N]."


def tracking_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--tracking-uri",
        envvar="MLFLOW_TRACKING_URI",
        help="MLflow store or server. [default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db]",
    )(f)


def tracking_wait_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--tracking-wait`` of the short commands that log into a run (training: 120 s)."""
    from ganbench.tracking.outbox.command import DEFAULT_WAIT

    return click.option(
        "--tracking-wait",
        type=click.FloatRange(min=0),
        default=DEFAULT_WAIT,
        show_default=True,
        envvar="GANBENCH_TRACKING_WAIT",
        help="Seconds to wait at the end for an absent tracking store before exiting 1 (the"
        " results are saved, and their records wait for `ganbench sync FOLDER`).",
    )(f)


def checkpoint_option(help: str | None = CHECKPOINT_HELP) -> Decorator:
    """``--checkpoint last|best``: which of the run's checkpoints to read."""
    return click.option(
        "--checkpoint",
        type=click.Choice(["last", "best"]),
        default="last",
        show_default=True,
        help=help,
    )


def device_option(help: str = DEVICE_HELP) -> Decorator:
    """``--device``: where the weights run."""
    return click.option("--device", default="auto", show_default=True, help=help)


def progress_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--progress/--no-progress", default=True)(f)


def logged_run_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The last options of ``eval``, ``probe`` and ``analyze``, in this order: the data
    (``--data-root``, ``--cache-dir``, ``--bad-images``), the run's store, how long to wait
    for it, and ``--progress``."""
    for option in reversed([data_options, tracking_option, tracking_wait_option, progress_option]):
        f = option(f)
    return f
