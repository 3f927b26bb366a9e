"""``ganbench zoo convert``, ``export`` and ``publish``: the commands that make zoo files.

``export`` and ``publish`` rebuild a run's PyTorch generator
(:class:`ganbench.runs.weights.RunWeights`, then :mod:`ganbench.zoo.exporting`);
``convert`` makes a zoo file's flavour for another tool with onnx and onnxruntime alone.
They join the ``zoo`` group in :mod:`ganbench.cli.zoo`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ganbench.cli.data import data_options
from ganbench.cli.run_options import (
    checkpoint_option,
    device_option,
    progress_option,
    tracking_option,
)
from ganbench.cli.zoo_options import index_options, locate, registry_option, say


@click.command()
@click.argument("ref", metavar="NAME|FILE.onnx")
@click.option(
    "--for",
    "flavour",
    type=click.Choice(["torch-fidelity"]),
    required=True,
    help="The tool: torch-fidelity (its noise in, uint8 RGB out).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="[default: NAME.torch-fidelity.onnx beside FILE.onnx, or here for a zoo name]",
)
@click.option(
    "--add-to-index",
    "add_to",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also list the new file in this index file's entry for the generator.",
)
@index_options
@registry_option
@click.option("--progress/--no-progress", default=True, help="Show the download bar.")
def convert(
    ref: str,
    flavour: str,
    output: Path | None,
    add_to: Path | None,
    index_flag: str | None,
    cache_dir: str | None,
    registry: str | None,
    progress: bool,
) -> None:
    """Make a zoo generator's file for another tool, checked against the plain file.

    \b
    The torch-fidelity file takes torch-fidelity's noise and gives uint8 RGB images equal
    to ganbench's own rounding of the plain file's, so `fidelity --input1 FILE` scores it.

    \b
    Example:
      ganbench zoo convert ganbench_zoo/dcgan-digits-32.onnx --for torch-fidelity \\
          --add-to-index ganbench_zoo/index.toml
    """
    from ganbench.zoo.fidelity_file import NP_INT_NOTE, shimmed_command
    from ganbench.zoo.flavours import flavour_path, list_in_index, write_torch_fidelity

    plain = locate(ref, index_flag, cache_dir, registry, progress)
    is_file = not ref.startswith("models:/") and (ref.endswith(".onnx") or Path(ref).is_file())
    # beside a file of the user's, but not into the cache: a zoo name's file comes here
    dest = output or (flavour_path(plain) if is_file else Path(flavour_path(plain).name))
    made, listed = write_torch_fidelity(plain, dest)
    click.echo(f"wrote {made} (sha256 {listed.sha256}, {listed.size:,} bytes)")
    if add_to is not None:
        replaced = list_in_index(add_to, plain, made, listed)
        click.echo(f"{'replaced' if replaced else 'listed'} it in {add_to}")
    click.echo(f"score it with: {listed.command(made)}")
    if listed.num_classes:
        click.echo(f"({NP_INT_NOTE}: {shimmed_command(listed.command(made))})")


def export_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """What ``export`` and ``publish`` share: which weights, how to score them."""
    for option in reversed(
        [
            click.option("--name", required=True, help="Zoo name, e.g. dcgan-digits-32."),
            checkpoint_option(),
            click.option(
                "--opset",
                type=click.IntRange(min=18),
                default=20,
                show_default=True,
                help="ONNX opset.",
            ),
            click.option(
                "--eval-samples",
                type=int,
                help="Score the exported file on N samples (through onnxruntime) instead of"
                " copying the run's scores at the checkpoint's step.",
            ),
            click.option(
                "--metrics", default="fid,is", show_default=True, help="With --eval-samples."
            ),
            device_option(help="For scoring."),
            data_options,
            tracking_option,
            progress_option,
        ]
    ):
        f = option(f)
    return f


@click.command()
@click.argument("run_ref", metavar="RUN_ID|CHECKPOINT")
@export_options
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("zoo"),
    show_default=True,
    help="Folder for NAME.onnx, NAME.md (model card) and NAME.png.",
)
@click.option(
    "--index",
    "index_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Index file to add the entry to. [default: OUT/index.toml]",
)
@click.option(
    "--url", help="URL the file will be published at. [default: its path relative to the index]"
)
@click.option(
    "--for",
    "flavours",
    multiple=True,
    type=click.Choice(["torch-fidelity"]),
    help="Also write NAME.torch-fidelity.onnx, listed in the entry: torch-fidelity's noise in,"
    " uint8 RGB out, for `fidelity --input1` (`zoo convert` makes one later).",
)
def export(
    run_ref: str, out_dir: Path, index_path: Path | None, url: str | None, **kw: Any
) -> None:
    """Export a run's generator to ONNX with metadata, a model card and an index entry.

    \b
    Example:
      ganbench zoo export 3f9f22e9... --name dcgan-digits-32 --checkpoint best
      ganbench zoo export 3f9f22e9... --name dcgan-digits-32 --for torch-fidelity
    """
    from ganbench.zoo.exporting import export_to_folder

    result = export_to_folder(run_ref, out_dir, index_path, url, say=say, **kw)
    for line in result:
        click.echo(line)


@click.command()
@click.argument("run_ref", metavar="RUN_ID|CHECKPOINT")
@export_options
@click.option(
    "--registry",
    "registry_flag",
    is_flag=False,
    flag_value="",
    default="",
    help="MLflow registry URI. [default: $MLFLOW_REGISTRY_URI, else the tracking store]",
)
@click.option(
    "--alias",
    "aliases",
    multiple=True,
    default=("champion",),
    show_default=True,
    help="Registry alias for the new version (repeatable).",
)
@click.option(
    "--index",
    "index_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also add an entry with url models:/NAME@ALIAS to this index file.",
)
def publish(
    run_ref: str, registry_flag: str, aliases: tuple[str, ...], index_path: Path | None, **kw: Any
) -> None:
    """Export a run's generator and register it in an MLflow Model Registry, with aliases.

    \b
    Example:
      ganbench zoo publish 3f9f22e9... --name dcgan-digits-32 --registry --alias champion
      ganbench zoo pull models:/dcgan-digits-32@champion
    """
    from ganbench.zoo.exporting import publish_to_registry

    for line in publish_to_registry(
        run_ref, registry_flag or None, aliases, index_path, say=say, **kw
    ):
        click.echo(line)
