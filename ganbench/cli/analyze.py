"""``ganbench analyze``: run an analysis plugin on a run, a checkpoint or a generator file.

The common options (which weights, device, seed, where to write) belong to this command;
each analysis declares its own (:class:`ganbench.plugins.interfaces.AnalysisOption`), which are
parsed by a click command built from those declarations, so ``--list`` and errors name
them exactly as the plugin wrote them.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ganbench.cli.run_options import checkpoint_option, device_option, logged_run_options
from ganbench.errors import UsageError

if TYPE_CHECKING:
    from ganbench.runs.reopen import Which
    from ganbench.runs.weights import RunWeights


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
@checkpoint_option()
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of latents and draws.")
@click.option(
    "--class",
    "class_label",
    type=int,
    help="A class-conditional generator's class for every image. [default: drawn per image]",
)
@device_option()
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
@logged_run_options
def analyze(
    run_ref: str | None,
    name: str | None,
    analysis_args: tuple[str, ...],
    list_: bool,
    checkpoint: Which,
    seed: int,
    class_label: int | None,
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
      ganbench analyze RUN_ID samples --class 7
      ganbench analyze RUN_ID guided-backprop
      ganbench analyze RUN_ID forgetting --boxes boxes.json --seed 3
      ganbench analyze RUN_ID memorisation
      ganbench analyze runs/RUN/checkpoints/last.pt walk --rows 4
    """
    from ganbench.plugins import load_registries
    from ganbench.runs.weights import RunWeights

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
    weights = RunWeights(
        run_ref, checkpoint, tracking_uri, cache_dir, device, registries=registries
    )
    _run(
        weights,
        analysis,
        options,
        seed=seed,
        class_label=class_label,
        out=out,
        inception_weights=inception_weights,
        data_root=data_root,
        bad_images=bad_images,
        tracking_wait=tracking_wait,
        progress=progress,
    )


def _run(
    weights: RunWeights,
    analysis: Any,
    options: dict[str, Any],
    *,
    seed: int,
    class_label: int | None = None,
    out: Path | None,
    inception_weights: str | None,
    data_root: str | None,
    bad_images: str,
    tracking_wait: float,
    progress: bool,
) -> None:
    from ganbench.analysis.context import AnalysisContext
    from ganbench.analysis.record import log_to_run, write_local
    from ganbench.analysis.subject import open_subject
    from ganbench.tracking.outbox.command import CommandOutbox

    torch_device = weights.torch_device
    say = functools.partial(click.echo, err=True)
    cache = weights.cache
    subject, target = open_subject(weights, "discriminator" in analysis.needs)
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
    if model.averaged_generator is not None:
        # The generator the run sampled and scored is G's moving average: analyses that
        # hook G's layers (forgetting) must look at the same weights they draw from.
        model.generator.load_state_dict(model.averaged_generator.state_dict())
        model.averaged_generator = None
        say("analysing G's exponential moving average (the run's ema), as it sampled")
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
        registries=weights.registries,
        progress=progress,
        say=say,
        data_root=data_root,
        cache_dir=weights.cache_dir,
        bad_images=bad_images,
        inception_weights=inception_weights,
        class_label=class_label,
    )
    say(f"{analysis.name} on {subject.source} (step {subject.step}), {torch_device}")
    result = analysis.run(context, options)
    recorded = {**options, "seed": seed, "checkpoint": weights.which}
    if class_label is not None:
        recorded["class"] = class_label
    folder = out or Path("analysis") / (subject.run_id or Path(weights.ref).stem) / analysis.name
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
