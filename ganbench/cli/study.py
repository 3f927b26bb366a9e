"""``ganbench study run|list|status`` and ``ganbench report``: variants x seeds as MLflow
parent and nested runs on Optuna, and the report that says which differences are real."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import click

from ganbench.cli.data import data_options
from ganbench.cli.run_options import tracking_option, tracking_wait_option
from ganbench.files.redact import safe_uri


def _say() -> Any:
    return functools.partial(click.echo, err=True)


def storage_option(f: Any) -> Any:
    return click.option(
        "--storage",
        envvar="GANBENCH_STUDY_STORAGE",
        help="Optuna storage URL shared by every worker of a study (PostgreSQL or MySQL for"
        " several machines). [default: $GANBENCH_STUDY_STORAGE or sqlite:///CACHE/studies/"
        "optuna.db]",
    )(f)


@click.group()
def study() -> None:
    """Compare variants over seeds: one MLflow parent run, one nested run per trial."""


@study.command(name="run")
@click.argument("ref", metavar="FILE|NAME")
@click.option("--dataset", "-d", "datasets", multiple=True, help="Replace the study's datasets.")
@click.option("--seeds", type=int, help="Run seeds 0..N-1 instead of the study's seeds.")
@click.option("--steps", type=int, help="Training steps of every trial.")
@click.option("--epochs", type=float, help="Passes over the data of every trial.")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
              help="Override a setting of every trial; repeatable.")  # fmt: skip
@click.option("--name", help="The study's name (default: the file's); a new name, a new study.")
@click.option("--jobs", "-j", type=int, help="Trials at once here. [default: one per GPU, one"
              " on the CPU]")  # fmt: skip
@click.option("--device", default="auto", show_default=True,
              help="auto, cpu, or a comma list (cuda:0,cuda:1) the jobs share.")  # fmt: skip
@click.option("--nproc", type=click.IntRange(min=1), metavar="N",
              help="Every trial data-parallel over N processes (torchrun on this machine,"
              " N GPUs each on GPUs), as `ganbench run --nproc N`: the batch is the global"
              " batch and rank 0 tracks.")  # fmt: skip
@click.option("--trials", "--search", "trials", type=int, metavar="N",
              help="Search the file's [search] ranges with N trials instead of running the"
              " grid (N of every variant where variants have their own"
              " [variants.NAME.search] ranges).")  # fmt: skip
@click.option("--sampler", type=click.Choice(["tpe", "random"]),
              help="Optuna sampler of a --trials search. [default: the study's 'sampler',"
              " else tpe]")  # fmt: skip
@click.option("--experiment", help="MLflow experiment. [default: study-NAME]")
@storage_option
@tracking_option
@data_options
@click.option("--progress/--no-progress", default=True, help="Show the progress bar.")
def run_study(
    ref: str,
    datasets: tuple[str, ...],
    seeds: int | None,
    steps: int | None,
    epochs: float | None,
    assignments: tuple[str, ...],
    name: str | None,
    jobs: int | None,
    device: str,
    nproc: int | None,
    trials: int | None,
    sampler: str | None,
    experiment: str | None,
    storage: str | None,
    tracking_uri: str | None,
    data_root: str | None,
    cache_dir: str | None,
    bad_images: str,
    progress: bool,
) -> None:
    """Run every variant x dataset x seed of a study (a TOML file or a built-in name) as
    MLflow runs nested under one parent run. Run it again to resume: finished trials are
    kept, interrupted ones continue from their checkpoints. The same command on another
    machine with the same --storage and --tracking-uri adds workers.

    \b
    SIGTERM, SIGINT or SIGUSR1 (SLURM's warning before the time limit) stop the
    running trials at their next step (each checkpoints) and exit with 128 + the
    signal: 143, 130, 138 (a second signal stops them at once).

    \b
    Examples:
      ganbench study run paper-ablations --dataset digits --seeds 3 --steps 300
      ganbench study run my-study.toml --jobs 2
      ganbench study run my-study.toml --trials 50 --sampler tpe
      ganbench study run gans-created-equal --trials 20   # 20 settings of each GAN
    """
    from ganbench import hparams as cfg
    from ganbench.data.paths import cache_root
    from ganbench.errors import UsageError
    from ganbench.study import definition
    from ganbench.study.engine import StudyRun
    from ganbench.study.launching import default_devices, device_groups
    from ganbench.study.options import StudyOptions
    from ganbench.study.storage import resolve_storage
    from ganbench.study.validate import check_study, prepare_data
    from ganbench.tracking.store import quiet_mlflow
    from ganbench.tracking.tracker import check_reachable, resolve_tracking_uri

    if steps is not None and epochs is not None:
        raise click.UsageError("give --steps or --epochs, not both")
    quiet_mlflow()
    spec, text = definition.load(ref)
    spec = definition.apply_overrides(
        spec,
        datasets=datasets,
        seeds=seeds,
        steps=steps,
        epochs=epochs,
        assignments=cfg.parse_assignments(assignments),
        name=name,
    )
    if trials is not None and not (spec.search or spec.per_variant_search):
        raise UsageError(
            f"--trials needs a study file with search ranges, a [search] table or"
            f" [variants.NAME.search] tables; {spec.name} has none"
        )
    if trials is not None and trials < 1:
        raise UsageError(f"--trials N needs N of at least 1; got {trials}")
    if trials is not None and spec.per_variant_search and not name:
        # Its grid (the paper defaults) and its search are two studies: both can be run.
        spec.name = f"{spec.name}-search"
    devices = default_devices() if device == "auto" else [d.strip() for d in device.split(",")]
    if jobs is not None and jobs < 1:
        raise UsageError("--jobs must be at least 1")
    cache = cache_root(cache_dir)
    data_args = [*(["--data-root", data_root] if data_root else [])]
    data_args += ["--cache-dir", str(cache), "--bad-images", bad_images]
    say = _say()
    uri = resolve_tracking_uri(tracking_uri)
    check_reachable(uri)  # before any data is prepared: a mistyped server fails in seconds
    gpu = any(d.startswith("cuda") for d in devices)
    registries = check_study(spec, nproc, gpu)
    prepare_data(registries, spec, data_root, str(cache), bad_images, progress=progress, say=say)
    options = StudyOptions(
        storage_url=resolve_storage(storage, cache),
        tracking_uri=uri,
        experiment=experiment or f"study-{spec.name}",
        cache=cache,
        devices=devices,
        jobs=jobs or max(1, len(device_groups(devices, nproc))),
        data_args=data_args,
        trials=trials,
        sampler=sampler or spec.sampler or "tpe",
        progress=progress,
        nproc=nproc,
    )
    result = StudyRun(spec, text, options, say).run()
    c = result.counts
    click.echo(
        f"study {spec.name}: {c['done']} finished, {c['diverged']} diverged, {c['failed']}"
        f" failed, {c['running']} running elsewhere; this worker ran {result.ran}"
    )
    click.echo(f"parent run: {result.parent_run_id} (experiment {options.experiment})")
    if result.complete:
        click.echo(f"report: {options.cache / 'studies' / spec.name / 'report' / 'report.html'}"
                   " (also in the parent run's artifacts under report/)")  # fmt: skip
    elif c["failed"]:
        raise UsageError(
            f"{c['failed']} trial(s) failed (see `ganbench study status {spec.name}`);"
            " run the same command again to retry them"
        )


@study.command(name="list")
@storage_option
@click.option("--cache-dir", envvar="GANBENCH_CACHE_DIR", type=click.Path(file_okay=False))
def list_studies(storage: str | None, cache_dir: str | None) -> None:
    """The built-in studies, and the studies in the storage."""
    from ganbench.data.paths import cache_root
    from ganbench.study import definition
    from ganbench.study.status import stored_studies

    click.echo("built-in studies (ganbench study run NAME):")
    for name in definition.builtin_names():
        spec, _ = definition.load(name)
        n = len(spec.variants) * len(spec.datasets) * len(spec.seeds)
        click.echo(f"  {name:<26} {len(spec.variants)} variants x {len(spec.seeds)} seeds"
                   f" = {n} trials: {spec.summary}")  # fmt: skip
    rows = stored_studies(storage, cache_root(cache_dir))
    if rows:
        click.echo("studies in the storage (ganbench study status NAME):")
        for line in rows:
            click.echo(f"  {line}")


@study.command(name="status")
@click.argument("name")
@storage_option
@click.option("--cache-dir", envvar="GANBENCH_CACHE_DIR", type=click.Path(file_okay=False))
def study_status(name: str, storage: str | None, cache_dir: str | None) -> None:
    """Where a study stands: every trial's state, FID and MLflow run."""
    from ganbench.data.paths import cache_root
    from ganbench.study.status import status_lines

    for line in status_lines(name, storage, cache_root(cache_dir)):
        click.echo(line)


@click.command()
@click.argument("ref", metavar="PARENT_RUN_ID|EXPERIMENT")
@tracking_option
@click.option("--out", type=click.Path(file_okay=False),
              help="Folder for report.html and report.md. [default: ./report-STUDY]")  # fmt: skip
@click.option("--cache-dir", envvar="GANBENCH_CACHE_DIR", type=click.Path(file_okay=False),
              help="Where the report waits for an absent store (CACHE/outbox)."
              " [default: $GANBENCH_CACHE_DIR or the user cache folder]")  # fmt: skip
@tracking_wait_option
def report(
    ref: str, tracking_uri: str | None, out: str | None, cache_dir: str | None,
    tracking_wait: float,
) -> None:  # fmt: skip
    """Write a study's report (self-contained HTML and Markdown) and log it into the
    study's parent run: per variant FID mean/std/min, IS, divergences, speed, the FID-vs-step
    band over seeds, curves, sample grids, and each variant's difference from the baseline
    with its 95% interval."""
    from mlflow.exceptions import MlflowException

    from ganbench.data.paths import cache_root
    from ganbench.errors import TrackingError
    from ganbench.runs.target import Target
    from ganbench.study.render import write_report
    from ganbench.study.results import parent_run
    from ganbench.tracking.outbox.command import CommandOutbox
    from ganbench.tracking.store import is_transient, open_client, quiet_mlflow
    from ganbench.tracking.tracker import check_reachable, resolve_tracking_uri

    quiet_mlflow()
    uri = resolve_tracking_uri(tracking_uri)
    check_reachable(uri)  # the report is made of what the store holds: it must answer
    try:
        client = open_client(uri)
        parent = parent_run(client, ref)
        name = parent.data.tags.get("ganbench.study", parent.info.run_id)
        folder = Path(out) if out else Path(f"report-{name}")
        paths = write_report(client, parent.info.run_id, folder)
    except MlflowException as exc:  # not OSError: the report's own files are OSErrors too
        if not is_transient(exc):
            raise
        text = str(exc).strip().splitlines()
        raise TrackingError(
            f"the MLflow store at {safe_uri(uri)} stopped answering while the report was read"
            f" ({text[0][:200] if text else type(exc).__name__}); run it again once it answers"
        ) from None
    for path in paths:
        click.echo(f"wrote {path}")
    target = Target(parent.info.run_id, uri, experiment_id=parent.info.experiment_id)
    outbox = CommandOutbox(target, "report", cache_root(cache_dir), keep=False)
    for path in paths:
        outbox.tracker.log_artifact(outbox.keep_file(path, "report"), "report")
    outbox.finish(tracking_wait, f"the report is written ({folder})")
    click.echo(f"logged into run {parent.info.run_id} under report/")
