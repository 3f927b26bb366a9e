"""``ganbench run``: train an architecture on a dataset, tracked in MLflow."""

from __future__ import annotations

from typing import Any

import click

from ganbench.cli.data import data_options, typed
from ganbench.cli.eval import scoring_options
from ganbench.cli.runs import (
    launcher_options,
    resume_options,
    run_folder_option,
    say_on_stderr,
)


@click.command()
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
@click.option(
    "--dedup",
    is_flag=True,
    default=None,
    help="Skip the near duplicates `ganbench data dedup` listed (one image per group stays).",
)
@data_options
@click.option("--experiment", default="ganbench", show_default=True, help="MLflow experiment.")
@click.option("--run-name", help="MLflow run name (default: MLflow picks one).")
@click.option(
    "--tag",
    "tag_items",
    multiple=True,
    metavar="KEY=VALUE",
    help="MLflow tag set when the run is created; repeatable (mlflow.parentRunId=RUN_ID"
    " nests it under another run, as a study's trials are).",
)
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
@launcher_options
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
    dedup: bool | None,
    data_root: str | None,
    cache_dir: str | None,
    bad_images: str,
    experiment: str,
    run_name: str | None,
    tag_items: tuple[str, ...],
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
    nproc: int | None,
    max_restarts: int,
    progress: bool,
) -> None:
    """Train ARCHITECTURE on a dataset and log everything to MLflow.

    \b
    The run's folder (checkpoints, heartbeat, tracking journal) is CACHE/runs/RUN_ID or
    --run-dir. SIGTERM, SIGINT or SIGUSR1 checkpoint at the next step and exit with
    128 + the signal; `ganbench resume` continues the run exactly.
    Data-parallel: --nproc N here, or torchrun (multi-node) as the launcher.

    \b
    Example:
      ganbench run dcgan --dataset digits
      ganbench run dcgan --dataset digits --steps 200 --set lr=0.001 --set beta1=0.9
      ganbench run dcgan --dataset lsun --nproc 8 --batch-size 1024
      torchrun --nproc-per-node 8 -m ganbench run dcgan --dataset lsun
    """
    from ganbench import hparams as cfg
    from ganbench.plugins import load_registries
    from ganbench.tracking.store import quiet_mlflow
    from ganbench.training.devices import resolve_device
    from ganbench.training.distributed import check_settings, process_group
    from ganbench.training.launch import DataOptions
    from ganbench.training.plan import plan_run
    from ganbench.training.speed import check_compile

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
        "dedup": dedup,
    }
    layers = []
    if config_file:
        layers.append((config_file, cfg.load_toml(config_file)))
    layers.append(("--set", cfg.parse_assignments(assignments)))
    layers.append(("the command line", {k: v for k, v in flags.items() if v is not None}))
    quiet_mlflow()
    registries = load_registries()
    plan = plan_run(registries, architecture, dataset, layers)
    if nproc is not None:
        _launch(plan, device, nproc, max_restarts)
        return
    with process_group(device) as replicas:
        torch_device = replicas.device if replicas else resolve_device(device)
        check_settings(
            plan.train.batch_size,
            plan.train.sync_bn,
            replicas.world if replicas else None,
            torch_device.type == "cuda",
        )
        check_compile(plan.train.compile, torch_device)
        if resume_ref:  # the run's own folders, unless typed now (see ``typed``)
            cache_dir = typed("cache_dir", cache_dir)
            inception_weights = typed("inception_weights", inception_weights)
        _run(
            registries,
            plan,
            DataOptions(data_root, cache_dir, bad_images, inception_weights),
            torch_device,
            replicas,
            resume_ref=resume_ref,
            run_dir=run_dir,
            run_name=run_name,
            tag_items=tag_items,
            experiment=experiment,
            tracking_uri=tracking_uri,
            tracking_wait=tracking_wait,
            force=force,
            progress=progress,
        )


def _launch(plan: Any, device: str, nproc: int, max_restarts: int) -> None:
    """``--nproc``: check what can be checked here, then become torchrun's launcher."""
    import sys

    import torch

    from ganbench.training.distributed import check_settings
    from ganbench.training.launcher import launch

    gpu = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    check_settings(plan.train.batch_size, plan.train.sync_bn, nproc, gpu)
    launch(nproc, max_restarts, sys.argv[1:])


def _run(
    registries: Any,
    plan: Any,
    options: Any,
    torch_device: Any,
    replicas: Any,
    *,
    resume_ref: str | None,
    run_dir: str | None,
    run_name: str | None,
    tag_items: tuple[str, ...],
    experiment: str,
    tracking_uri: str | None,
    tracking_wait: float,
    force: bool,
    progress: bool,
) -> None:
    """A new run, a resumed one (--resume), or, in a torchrun group restarted after a
    failure, the run this launch had started (resumed, with no user action)."""
    from ganbench import hparams as cfg
    from ganbench.runs.resuming import resume_run
    from ganbench.runs.service import start_run

    if resume_ref:
        given = click.get_current_context().get_parameter_source
        if (
            run_dir
            or run_name
            or tag_items
            or given("experiment") != click.core.ParameterSource.DEFAULT
        ):
            raise click.UsageError(
                "--resume continues a run: drop --run-dir, --run-name, --tag, --experiment"
            )
    elif replicas is not None:
        resume_ref = _relaunched(replicas, options, experiment, tracking_uri)
        # this launch's own earlier processes are gone: their heartbeat is no obstacle
        force = force or resume_ref is not None
    if resume_ref:
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
            say=say_on_stderr(),
            echo=click.echo,
            replicas=replicas,
        )
        return
    start_run(
        registries,
        plan,
        options,
        tracking_uri=tracking_uri,
        experiment=experiment,
        run_name=run_name,
        tags=cfg.parse_assignments(tag_items, option="--tag"),
        run_dir=run_dir,
        device=torch_device,
        tracking_wait=tracking_wait,
        progress=progress,
        say=say_on_stderr(),
        echo=click.echo,
        replicas=replicas,
    )


def _relaunched(
    replicas: Any, options: Any, experiment: str, tracking_uri: str | None
) -> str | None:
    """The run this torchrun launch started before it was restarted (``--max-restarts``)
    or requeued under the same rendezvous id, to be resumed with no user action; None for
    a new run. Rank 0 looks, every rank learns (whatever each node's restart count)."""
    from ganbench.training.distributed import launch_id, restart_count

    launch = launch_id()
    if launch is None:
        if replicas.is_main and restart_count() > 0:
            click.echo(
                "note: torchrun restarted this group, but its rendezvous id is torchrun's"
                " default 'none', shared by every launch: starting a new run (pass"
                " --rdzv-id, e.g. $SLURM_JOB_ID, so that a restart resumes its run)",
                err=True,
            )
        return None

    def find() -> str | None:
        from ganbench.data.paths import cache_root
        from ganbench.runs.resume import launch_run
        from ganbench.tracking.store import open_client, sqlite_path
        from ganbench.tracking.tracker import check_reachable, resolve_tracking_uri

        uri = resolve_tracking_uri(tracking_uri)
        check_reachable(uri)
        db = sqlite_path(uri)
        store = None if db is not None and not db.exists() else lambda: open_client(uri)
        found = launch_run(launch, cache_root(options.cache_dir), store, experiment)
        if found is not None:
            click.echo(
                f"torchrun launch {launch} (restart {restart_count()}): resuming its run {found}",
                err=True,
            )
        return found

    return replicas.share(find)
