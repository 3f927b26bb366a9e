"""``ganbench zoo``: export, publish, list, pull and run zoo generators.

``list``, ``info``, ``pull``, ``sample``, ``interpolate`` and ``arithmetic`` import neither
torch nor MLflow (MLflow only to pull a ``models:/`` URL): a user of the zoo needs
onnxruntime, NumPy and Pillow. ``export`` and ``publish`` rebuild the PyTorch generator.

The group and the commands that pull, list, draw and remove are here; the options they
share are :mod:`ganbench.cli.zoo_options`'s, and ``convert``, ``export`` and ``publish``
(which make zoo files) are :mod:`ganbench.cli.zoo_export`'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ganbench.cli.zoo_export import convert, export, publish
from ganbench.cli.zoo_options import (
    index_options,
    locate,
    open_index,
    open_runtime,
    registry_option,
    runtime_options,
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

    from ganbench.zoo.flavours import fidelity_command, flavour_entry
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
    lines = [
        f"torch-fidelity file: {where} (sha256 {tf.sha256}, {tf.size:,} bytes)",
        f"  z: torch-fidelity's {tf.z_type} noise; images: uint8 RGB 0-255, as ganbench rounds",
        f"  score it with: {fidelity_command(path, tf.z_type, tf.z_size)}",
    ]
    if not local and not is_cached(flavour_entry(entry), cache):
        index_arg = f" --index {shlex.quote(index_flag)}" if index_flag else ""
        lines.append(f"  (first: ganbench zoo pull {entry.name}{index_arg} --for torch-fidelity)")
    return lines


def _picture(rows: list, out: Path) -> None:
    from ganbench.images import grid, save_atomic

    save_atomic(grid(rows), out)
    click.echo(f"wrote {out}")


@zoo.command()
@click.argument("ref", metavar="NAME|FILE.onnx|models:/NAME@ALIAS")
@click.option("-n", "count", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--nrow", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--save-z", type=click.Path(dir_okay=False, path_type=Path), help="Save z (.npy).")
@runtime_options
def sample(
    ref: str,
    count: int,
    output: Path,
    nrow: int,
    save_z: Path | None,
    seed: int,
    provider: str,
    **where: Any,
) -> None:
    """Draw N images from a zoo generator into a grid (index = row * nrow + column)."""
    from ganbench.images import check_output, square_rows, to_uint8
    from ganbench.zoo.runtime import latents

    check_output(output)
    generator = open_runtime(ref, provider, **where)
    z = latents(generator.info, count, seed)
    images = to_uint8(generator.generate(z), generator.info.output_range)
    _picture(square_rows(images, nrow), output)
    if save_z is not None:
        import numpy as np

        np.save(save_z, z)
        click.echo(f"wrote {save_z}")


@zoo.command()
@click.argument("ref", metavar="NAME|FILE.onnx|models:/NAME@ALIAS")
@click.option("--steps", type=click.IntRange(min=2), default=10, show_default=True)
@click.option(
    "--rows", type=click.IntRange(min=1), default=4, show_default=True, help="Random walks."
)
@click.option(
    "--between",
    multiple=True,
    metavar="I,J",
    help="Walk from sample I to sample J of `zoo sample` with the same seed (repeatable;"
    " replaces the random rows).",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@runtime_options
def interpolate(
    ref: str,
    steps: int,
    rows: int,
    between: tuple[str, ...],
    output: Path,
    seed: int,
    provider: str,
    **where: Any,
) -> None:
    """Latent walks: each row goes in a straight line between two points of z (Fig. 4).

    \b
    Without --between, row r walks from sample 2r to sample 2r+1 of
    `ganbench zoo sample NAME --seed S` (the same seed).
    """
    import numpy as np

    from ganbench.images import check_output, to_uint8
    from ganbench.zoo.runtime import latents, walk

    pairs = [_pair(text) for text in between]
    check_output(output)
    generator = open_runtime(ref, provider, **where)
    info = generator.info
    if pairs:
        z = latents(info, max(max(p) for p in pairs) + 1, seed)
        ends = [(z[i], z[j]) for i, j in pairs]
    else:  # row r walks from sample 2r to sample 2r + 1 of `zoo sample --seed S`
        z = latents(info, 2 * rows, seed)
        ends = [(z[2 * r], z[2 * r + 1]) for r in range(rows)]
    walks = np.concatenate([walk(a, b, steps) for a, b in ends])
    images = to_uint8(generator.generate(walks), info.output_range)
    _picture([list(images[r * steps : (r + 1) * steps]) for r in range(len(ends))], output)


def _pair(text: str) -> tuple[int, int]:
    try:
        i, j = (int(v) for v in text.split(","))
    except ValueError:
        raise click.UsageError(f"--between {text!r}: give two sample indices, e.g. 3,17") from None
    if min(i, j) < 0:
        raise click.UsageError(f"--between {text!r}: indices start at 0")
    return i, j


@zoo.command()
@click.argument("ref", metavar="NAME|FILE.onnx|models:/NAME@ALIAS")
@click.argument("expression")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option(
    "--variations",
    type=click.IntRange(min=0),
    default=8,
    show_default=True,
    help="Extra images of the result with noise added (the paper shows 8).",
)
@click.option(
    "--noise",
    type=click.FloatRange(min=0),
    default=0.25,
    show_default=True,
    help="Scale of the uniform noise added for the variations (the paper: 0.25).",
)
@runtime_options
def arithmetic(
    ref: str,
    expression: str,
    output: Path,
    variations: int,
    noise: float,
    seed: int,
    provider: str,
    **where: Any,
) -> None:
    """Vector arithmetic on z (the paper's Fig. 7): EXPRESSION like "1,5,9 - 2,4,6 + 7,8,11".

    \b
    Each group is sample indices from `ganbench zoo sample NAME --seed S` (index = row * 8
    + column); a concept is the average z of its group (the paper uses three samples).
    One row per group (its samples, then the image of their average z); the last row is
    the result, then VARIATIONS images of the result plus uniform noise of scale NOISE.
    """
    import numpy as np

    from ganbench.images import check_output, to_uint8
    from ganbench.zoo.runtime import (
        arithmetic_latents,
        latents,
        parse_arithmetic,
        split_rows,
    )

    terms = parse_arithmetic(expression)
    check_output(output)
    generator = open_runtime(ref, provider, **where)
    info = generator.info
    z = latents(info, max(max(ix) for _, ix in terms) + 1, seed)
    rows_z = arithmetic_latents(z, terms, variations, noise, seed)
    images = to_uint8(generator.generate(np.concatenate(rows_z)), info.output_range)
    _picture(split_rows(images, rows_z), output)
    written = " ".join(f"{'+-'[sign < 0]} mean{ix}" for sign, ix in terms).lstrip("+ ")
    click.echo(f"rows: each group's samples then their mean; last row: {written}, + variations")


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


for command in (convert, export, publish):
    zoo.add_command(command)
