"""``ganbench zoo``: export, publish, list, pull and run zoo generators.

``list``, ``info``, ``pull``, ``sample``, ``interpolate`` and ``arithmetic`` import neither
torch nor MLflow (MLflow only to pull a ``models:/`` URL): a user of the zoo needs
onnxruntime, NumPy and Pillow. ``export`` and ``publish`` rebuild the PyTorch generator.

The group and the commands that pull, list and remove are here; the options they share
are :mod:`ganbench.cli.zoo_options`'s, ``sample``, ``interpolate`` and ``arithmetic``
(which draw) are :mod:`ganbench.cli.zoo_draw`'s, and ``convert``, ``export`` and
``publish`` (which make zoo files) are :mod:`ganbench.cli.zoo_export`'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ganbench.cli.zoo_draw import arithmetic, interpolate, sample
from ganbench.cli.zoo_export import convert, export, publish
from ganbench.cli.zoo_options import (
    index_options,
    locate,
    open_index,
    registry_option,
    say,
)


@click.group()
def zoo() -> None:
    """Trained generators as ONNX files: export, publish, list, pull, sample."""


@zoo.command(name="list")
@index_options
def list_command(index_flag: str | None, cache_dir: str | None) -> None:
    """List the generators in the zoo index, with their scores."""
    from ganbench.zoo.store import is_cached

    index, cache = open_index(index_flag, cache_dir)
    click.echo(f"zoo index: {index.location}")
    rows = [("name", "dataset", "image", "z", "scores", "size", "cached")]
    for e in index:
        i = e.info
        shown = [s for s in i.metrics if not s.name.endswith("_std")][:3]  # `info` has all
        scores = ", ".join(f"{s.name} {s.value:.3g}" for s in shown) or "-"
        image = f"{i.channels}x{i.resolution}x{i.resolution}"
        cached = "yes" if is_cached(e, cache, verify=False) else "no"  # `info` re-hashes
        z = f"{i.z_dim} {i.z_distribution}"
        rows.append((e.name, i.dataset, image, z, scores, f"{e.size / 1e6:.1f} MB", cached))
    if len(rows) == 1:
        click.echo("(no generators)")
        return
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


@zoo.command()
@click.argument("name")
@index_options
def info(name: str, index_flag: str | None, cache_dir: str | None) -> None:
    """Show everything the index says about generator NAME."""
    from ganbench.zoo.store import cached_path, is_cached

    index, cache = open_index(index_flag, cache_dir)
    entry = index.get(name)
    click.echo(entry.name)
    for line in entry.info.describe():
        click.echo(f"  {line}")
    click.echo(f"  file: {index.resolve(entry.url)}")
    click.echo(f"  sha256 {entry.sha256}, {entry.size:,} bytes")
    if entry.card:
        click.echo(f"  model card: {index.resolve(entry.card)}")
    state = "verified" if is_cached(entry, cache) else "not pulled"
    click.echo(f"  cache: {cached_path(entry, cache)} ({state})")
    for line in _fidelity_lines(entry, index, cache, index_flag):
        click.echo(f"  {line}")
    click.echo("  metrics:" if entry.info.metrics else "  metrics: none")
    for s in entry.info.metrics:
        click.echo(f"    {s.name} = {s.value:.6g}  ({s.how})")


@zoo.command()
@click.argument("ref", metavar="NAME|models:/NAME@ALIAS")
@index_options
@registry_option
@click.option("--progress/--no-progress", default=True, help="Show the download bar.")
@click.option(
    "--for",
    "flavour",
    type=click.Choice(["torch-fidelity"]),
    help="Pull the generator's file for this tool instead (`zoo info NAME` shows its command).",
)
def pull(
    ref: str,
    index_flag: str | None,
    cache_dir: str | None,
    registry: str | None,
    progress: bool,
    flavour: str | None = None,
) -> None:
    """Download a generator into the cache, verified by sha256; prints its path.

    \b
    Works offline once pulled: the cached file is re-verified and used.

    \b
    Example:
      ganbench zoo pull dcgan-digits-32
      ganbench zoo pull models:/dcgan-digits-32@champion --registry sqlite:///mlflow.db
      ganbench zoo pull dcgan-digits-32 --for torch-fidelity
    """
    if flavour:
        path = _pull_flavour(ref, index_flag, cache_dir, registry, progress)
    else:
        path = locate(ref, index_flag, cache_dir, registry, progress)
    click.echo(str(path))


def _pull_flavour(
    name: str, index_flag: str | None, cache_dir: str | None, registry: str | None, progress: bool
) -> Path:
    """The verified cached torch-fidelity file of zoo generator ``name``."""
    from ganbench.errors import ZooError
    from ganbench.zoo import store
    from ganbench.zoo.flavours import flavour_entry

    if name.startswith("models:/") or name.endswith(".onnx"):
        raise click.UsageError(
            "--for takes a zoo name; for a file: `ganbench zoo convert FILE --for torch-fidelity`"
        )
    index, cache = open_index(index_flag, cache_dir)
    entry = index.get(name)
    if entry.torch_fidelity is None:
        raise ZooError(
            f"{name} has no torch-fidelity file in {index.location}; make one with"
            f" `ganbench zoo convert {name} --for torch-fidelity`"
        )
    return store.pull(
        flavour_entry(entry), index, cache, progress=progress, registry_uri=registry, say=say
    )


def _fidelity_lines(entry: Any, index: Any, cache: Path, index_flag: str | None) -> list[str]:
    """``zoo info``'s lines on the torch-fidelity file: where it is and the command."""
    import shlex

    from ganbench.zoo.fidelity_file import NP_INT_NOTE, shimmed_command
    from ganbench.zoo.flavours import flavour_entry
    from ganbench.zoo.store import cached_path, is_cached

    tf = entry.torch_fidelity
    if tf is None:
        return [
            "torch-fidelity: no file listed; make one with"
            f" `ganbench zoo convert {entry.name} --for torch-fidelity`"
        ]
    where = index.resolve(tf.url)
    local = "://" not in where and not where.startswith("file:") and Path(where).is_file()
    path = Path(where) if local else cached_path(flavour_entry(entry), cache)
    labels = f"; y: its labels of {tf.num_classes} classes" if tf.num_classes else ""
    lines = [
        f"torch-fidelity file: {where} (sha256 {tf.sha256}, {tf.size:,} bytes)",
        f"  z: torch-fidelity's {tf.z_type} noise{labels}; images: uint8 RGB 0-255, as"
        " ganbench rounds",
        f"  score it with: {tf.command(path)}",
    ]
    if tf.num_classes:
        lines.append(f"  ({NP_INT_NOTE}: {shimmed_command(tf.command(path))})")
    if not local and not is_cached(flavour_entry(entry), cache):
        index_arg = f" --index {shlex.quote(index_flag)}" if index_flag else ""
        lines.append(f"  (first: ganbench zoo pull {entry.name}{index_arg} --for torch-fidelity)")
    return lines


@zoo.command()
@click.argument("name")
@index_options
def remove(name: str, index_flag: str | None, cache_dir: str | None) -> None:
    """Delete generator NAME's file from the cache."""
    from ganbench.zoo.store import cached_path
    from ganbench.zoo.store import remove as remove_cached

    index, cache = open_index(index_flag, cache_dir)
    entry = index.get(name)
    done = remove_cached(entry, cache)
    click.echo(f"removed {cached_path(entry, cache).parent}" if done else f"{name} is not cached")


for command in (sample, interpolate, arithmetic, convert, export, publish):
    zoo.add_command(command)
