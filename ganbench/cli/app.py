"""The ``ganbench`` command line.

Heavy imports (torch, mlflow) happen inside the commands that need them, so that
``ganbench --help`` and ``ganbench plugins`` answer quickly.
"""

from __future__ import annotations

import sys
from typing import Any

import click

import ganbench
from ganbench.cli_data import data, data_options, datasets
from ganbench.cli_eval import eval_command, scoring_options
from ganbench.cli_probe import probe
from ganbench.cli_runs import resume, resume_options, run_folder_option, runs, sync
from ganbench.cli_zoo import zoo
from ganbench.errors import GanbenchError


class _Stopped(click.ClickException):
    """A run stopped by a signal: its line is news, not an error, and the exit code is
    128 + the signal, as a shell reports a process killed by it (SLURM scripts test it)."""

    def show(self, file: Any = None) -> None:
        click.echo(self.format_message(), err=True)


class _Group(click.Group):
    """Turns ganbench's errors into click's one-line ``Error: ...`` and exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        from ganbench.training.signals import Preempted, StopNow

        try:
            return super().invoke(ctx)
        except Preempted as exc:
            stopped = _Stopped(str(exc))
            stopped.exit_code = exc.exit_code
            raise stopped from None
        except StopNow as exc:
            stopped = _Stopped(f"stopped at once by a second {exc}; {exc.note}")
            stopped.exit_code = 128 + exc.signum
            raise stopped from None
        except KeyboardInterrupt:
            stopped = _Stopped("interrupted")
            stopped.exit_code = 130
            raise stopped from None
        except GanbenchError as exc:
            error = click.ClickException(str(exc))
            error.exit_code = exc.exit_code
            raise error from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(ganbench.__version__, prog_name="ganbench")
def cli() -> None:
    """Train, score and compare GANs; every run is tracked in MLflow."""


@cli.command()
@click.argument("architecture")
@click.option(
    "--dataset", "-d", required=True, help="Dataset plugin name (see `ganbench plugins`)."
)
@click.option("--resolution", "-r", type=int, help="Image size (default: the dataset's).")
@click.option("--steps", type=int, help="Training steps (overrides epochs).")
@click.option("--epochs", type=float, help="Passes over the split (overrides steps).")
@click.option("--batch-size", "-b", type=int, help="Mini-batch size (DCGAN default: 128).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda[:N].")
@click.option("--seed", type=int, help="Seed for weights, data order and samples (default 0).")
@click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override any hyperparameter; repeatable.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    help="TOML file of hyperparameters (applied before --set).",
)
@click.option("--split", help="Dataset split to train on (default: train).")
@click.option("--category", help="Dataset sub-set(s), comma-separated (LSUN: bedroom,...).")
@data_options
@click.option("--experiment", default="ganbench", show_default=True, help="MLflow experiment.")
@click.option("--run-name", help="MLflow run name (default: MLflow picks one).")
@click.option(
    "--tracking-uri",
    envvar="MLFLOW_TRACKING_URI",
    help="MLflow store or server. [default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db]",
)
@click.option("--eval-every", type=int, help="Score the generator every N steps (and at the end).")
@click.option("--eval-samples", type=int, help="Generated images per score (default 10000).")
@click.option("--metrics", "eval_metrics", help="Metrics scored with --eval-every (default fid).")
@scoring_options
@run_folder_option
@click.option(
    "--resume",
    "resume_ref",
    metavar="RUN_ID|RUN_DIR",
    help="Continue this run instead of starting one (its settings must match; see"
    " `ganbench resume`).",
)
@resume_options
@click.option("--progress/--no-progress", default=True, help="Show the progress bar.")
def run(
    architecture: str,
    dataset: str,
    resolution: int | None,
    steps: int | None,
    epochs: float | None,
    batch_size: int | None,
    device: str,
    seed: int | None,
    assignments: tuple[str, ...],
    config_file: str | None,
    split: str | None,
    category: str | None,
    data_root: str | None,
    cache_dir: str | None,
    bad_images: str,
    experiment: str,
    run_name: str | None,
    tracking_uri: str | None,
    eval_every: int | None,
    eval_samples: int | None,
    eval_metrics: str | None,
    extractor: str | None,
    inception_weights: str | None,
    run_dir: str | None,
    resume_ref: str | None,
    tracking_wait: float,
    force: bool,
    progress: bool,
) -> None:
    """Train ARCHITECTURE on a dataset and log everything to MLflow.

    \b
    The run's folder (checkpoints, heartbeat, tracking journal) is CACHE/runs/RUN_ID or
    --run-dir. SIGTERM, SIGINT or SIGUSR1 checkpoint at the next step and exit with
    128 + the signal; `ganbench resume` continues the run exactly.
    Example:
      ganbench run dcgan --dataset digits
      ganbench run dcgan --dataset digits --steps 200 --set lr=0.001 --set beta1=0.9
    """
    from ganbench import config as cfg
    from ganbench.cli_runs import resume_run, start_run
    from ganbench.devices import resolve_device
    from ganbench.mlflow_store import quiet_mlflow
    from ganbench.plugins import load_registries
    from ganbench.training.launch import DataOptions
    from ganbench.training.plan import plan_run

    if steps is not None and epochs is not None:
        raise click.UsageError("give --steps or --epochs, not both")
    flags = {
        "category": category,
        "resolution": resolution,
        "steps": steps,
        "epochs": epochs,
        "batch_size": batch_size,
        "seed": seed,
        "split": split,
        "eval_every": eval_every,
        "eval_samples": eval_samples,
        "eval_metrics": eval_metrics,
        "eval_extractor": extractor,
    }
    layers = []
    if config_file:
        layers.append((config_file, cfg.load_toml(config_file)))
    layers.append(("--set", cfg.parse_assignments(assignments)))
    layers.append(("the command line", {k: v for k, v in flags.items() if v is not None}))
    quiet_mlflow()
    registries = load_registries()
    plan = plan_run(registries, architecture, dataset, layers)
    torch_device = resolve_device(device)
    options = DataOptions(data_root, cache_dir, bad_images, inception_weights)
    if resume_ref:
        given = click.get_current_context().get_parameter_source
        if run_dir or run_name or given("experiment") != click.core.ParameterSource.DEFAULT:
            raise click.UsageError(
                "--resume continues a run: drop --run-dir, --run-name, --experiment"
            )
        resume_run(
            resume_ref,
            registries,
            options,
            plan=plan,
            tracking_uri=tracking_uri,
            device=torch_device,
            tracking_wait=tracking_wait,
            force=force,
            progress=progress,
        )
        return
    start_run(
        registries,
        plan,
        options,
        tracking_uri=tracking_uri,
        experiment=experiment,
        run_name=run_name,
        run_dir=run_dir,
        device=torch_device,
        tracking_wait=tracking_wait,
        progress=progress,
    )


@cli.command()
def plugins() -> None:
    """List the loaded plugins, where each comes from and what it registers."""
    from ganbench.plugins import load_registries

    registries = load_registries()
    for info in registries.plugins:
        click.echo(f"{info.name}  ({info.source})")
        if not info.registers:
            click.echo("    registers nothing")
        for kind, names in info.registers.items():
            click.echo(f"    {kind}: {', '.join(names)}")


cli.add_command(datasets)
cli.add_command(data)
cli.add_command(eval_command)
cli.add_command(probe)
cli.add_command(runs)
cli.add_command(resume)
cli.add_command(sync)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="ganbench")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
cli.add_command(zoo)
