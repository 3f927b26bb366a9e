"""``ganbench analyze``: run an analysis plugin on a run, a checkpoint or a generator file.

The common options (which weights, device, seed, where to write) belong to this command;
each analysis declares its own (:class:`ganbench.plugins.interfaces.AnalysisOption`), which are
parsed by a click command built from those declarations, so ``--list`` and errors name
them exactly as the plugin wrote them.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import click

from ganbench.cli.data import data_options
from ganbench.cli.eval import tracking_option, tracking_wait_option
from ganbench.errors import UsageError


def _option_param(option: Any) -> click.Option:
    """A click option for an :class:`AnalysisOption`."""
    flags = [f"--{option.name}"]
    if option.type is bool:
        flags = [f"--{option.name}/--no-{option.name}"]
    if option.short:
        flags.append(f"-{option.short}")
    kind: Any = option.type
    if option.type is Path:
        kind = click.Path(exists=True, dir_okay=False, path_type=Path)
    return click.Option(
        flags,
        type=None if option.type is bool else kind,
        default=option.default,
        required=option.required,
        help=option.help,
        show_default=option.default is not None,
    )


def parse_options(analysis: Any, args: list[str]) -> dict[str, Any]:
    """The analysis's own options from ``args``; a one-line error names a bad one."""
    params = [_option_param(o) for o in analysis.options]
    command = click.Command(analysis.name, params=params, add_help_option=False)
    try:
        ctx = command.make_context(f"ganbench analyze RUN {analysis.name}", list(args))
    except click.UsageError as exc:
        known = ", ".join(f"--{o.name}" for o in analysis.options) or "none"
        raise UsageError(
            f"{analysis.name}: {exc.format_message()} (its options: {known}; common ones:"
            " see ganbench analyze --help)"
        ) from None
    values = {
        o.name.replace("-", "_"): ctx.params[o.name.replace("-", "_")] for o in analysis.options
    }
    # click does not refuse a required option whose default is None here; we do
    missing = [
        f"--{o.name}"
        for o in analysis.options
        if o.required and values[o.name.replace("-", "_")] is None
    ]
    if missing:
        raise UsageError(
            f"{analysis.name}: Missing option {', '.join(missing)}"
            " (ganbench analyze --list shows what it takes)"
        )
    return values


def describe(analysis: Any) -> list[str]:
    """``--list``'s lines for one analysis."""
    lines = [f"{analysis.name}: {analysis.summary}"]
    lines.append(f"    needs: {', '.join(sorted(analysis.needs))}")
    for o in analysis.options:
        short = f", -{o.short}" if o.short else ""
        default = f" [default: {o.default}]" if o.default is not None else ""
        required = " (required)" if o.required else ""
        lines.append(f"    --{o.name}{short}{required}: {o.help}{default}")
    return lines


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("run_ref", metavar="RUN_ID|CHECKPOINT", required=False)
@click.argument("name", metavar="NAME", required=False)
@click.argument("analysis_args", nargs=-1, type=click.UNPROCESSED)
@click.option("--list", "list_", is_flag=True, help="List the analyses and their options.")
@click.option(
    "--checkpoint",
    type=click.Choice(["last", "best"]),
    default="last",
    show_default=True,
    help="Which checkpoint of the run (best: the best FID under --eval-every).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of latents and draws.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda[:N].")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the pictures and numbers. [default: ./analysis/<run ID or file>/NAME]",
)
@click.option(
    "--inception-weights",
    type=click.Path(dir_okay=False),
    envvar="GANBENCH_INCEPTION_WEIGHTS",
    help="Local Inception-v3 weights file, for analyses in Inception's feature space.",
)
@data_options
@tracking_option
@tracking_wait_option
@click.option("--progress/--no-progress", default=True)
def analyze(
    run_ref: str | None,
    name: str | None,
    analysis_args: tuple[str, ...],
    list_: bool,
    checkpoint: str,
    seed: int,
    device: str,
    out: Path | None,
    inception_weights: str | None,
    data_root: str | None,
    cache_dir: str | None,
    bad_images: str,
    tracking_uri: str | None,
    tracking_wait: float,
    progress: bool,
) -> None:
    """Look inside a trained GAN: the DCGAN paper's analyses, and any plugin's.

    Pictures and numbers go into the run (artifacts under analysis/NAME/, images, metrics
    analysis.NAME.*) and into a local folder (--out).

    \b
    Examples:
      ganbench analyze --list
      ganbench analyze RUN_ID samples -n 150 --seed 3
      ganbench analyze RUN_ID guided-backprop
      ganbench analyze RUN_ID forgetting --boxes boxes.json --seed 3
      ganbench analyze RUN_ID memorisation
      ganbench analyze runs/RUN/checkpoints/last.pt walk --rows 4
    """
    from ganbench.plugins import load_registries

    registries = load_registries()
    if list_:
        for analysis in registries.analyses:
            for line in describe(analysis):
                click.echo(line)
        return
    if not run_ref or not name:
        raise UsageError(
            "give a run ID (or checkpoint file) and an analysis name, e.g. ganbench analyze"
            " RUN_ID samples; ganbench analyze --list shows the analyses"
        )
    analysis = registries.analyses.get(name)
    options = parse_options(analysis, list(analysis_args))
    _run(
        registries,
        analysis,
        options,
        run_ref,
        checkpoint=checkpoint,
        seed=seed,
        device=device,
        out=out,
        inception_weights=inception_weights,
        data_root=data_root,
        cache_dir=cache_dir,
        bad_images=bad_images,
        tracking_uri=tracking_uri,
        tracking_wait=tracking_wait,
        progress=progress,
    )


def _run(
    registries: Any,
    analysis: Any,
    options: dict[str, Any],
    run_ref: str,
    *,
    checkpoint: str,
    seed: int,
    device: str,
    out: Path | None,
    inception_weights: str | None,
    data_root: str | None,
    cache_dir: str | None,
    bad_images: str,
    tracking_uri: str | None,
    tracking_wait: float,
    progress: bool,
) -> None:
    from ganbench.analysis.context import AnalysisContext
    from ganbench.analysis.record import log_to_run, write_local
    from ganbench.analysis.subject import open_subject
    from ganbench.data.paths import cache_root
    from ganbench.tracking.outbox.command import CommandOutbox
    from ganbench.training.devices import resolve_device

    torch_device = resolve_device(device)
    say = functools.partial(click.echo, err=True)
    cache = cache_root(cache_dir)
    subject, target = open_subject(
        run_ref, registries, checkpoint, tracking_uri, "discriminator" in analysis.needs, cache
    )
    if "discriminator" in analysis.needs and not subject.has_discriminator:
        raise UsageError(
            f"{subject.source} holds the generator only; {analysis.name} needs the trained"
            " discriminator: give the run ID or its checkpoints/last.pt"
        )
    if "data" in analysis.needs and subject.plan is None:
        raise UsageError(
            f"{subject.source} is a generator file with no dataset; {analysis.name} needs the"
            " run's data: give the run ID or a training checkpoint"
        )
    model = subject.model.to(torch_device)
    model.generator.eval()
    model.discriminator.eval()
    context = AnalysisContext(
        name=analysis.name,
        model=model,
        architecture=subject.architecture,
        model_config=subject.model_config,
        shape=subject.shape,
        plan=subject.plan,
        step=subject.step,
        source=subject.source,
        has_discriminator=subject.has_discriminator,
        device=torch_device,
        seed=seed,
        registries=registries,
        progress=progress,
        say=say,
        data_root=data_root,
        cache_dir=cache_dir,
        bad_images=bad_images,
        inception_weights=inception_weights,
    )
    say(f"{analysis.name} on {subject.source} (step {subject.step}), {torch_device}")
    result = analysis.run(context, options)
    recorded = {**options, "seed": seed, "checkpoint": checkpoint}
    folder = out or Path("analysis") / (subject.run_id or Path(run_ref).stem) / analysis.name
    files = write_local(result, folder, analysis.name, subject.source, subject.step, recorded)
    for line in result.lines:
        click.echo(line)
    click.echo(f"wrote {len(files)} file(s) to {folder}")
    if target is not None:
        outbox = CommandOutbox(target, "analyze", cache, keep=False)
        kept = [outbox.keep_file(path, f"analysis/{analysis.name}") for path in files]
        what = log_to_run(outbox.tracker, result, kept, analysis.name, subject.step, recorded)
        outbox.finish(tracking_wait, f"{analysis.name} wrote {len(files)} file(s) to {folder}")
        click.echo(f"logged into {outbox.describe()}, {what}")
