"""``ganbench zoo sample``, ``interpolate`` and ``arithmetic``: pictures from a zoo file.

They run with onnxruntime, NumPy and Pillow alone (no torch). A class-conditional file
takes labels beside z: ``--class K`` (repeatable, or a comma list) chooses them; without
it ``sample`` draws them uniformly from the seed (``ganbench.zoo.runtime.labels``). An
unconditional file refuses ``--class``, and a class outside the file's range is refused,
each in one line. They join the ``zoo`` group in :mod:`ganbench.cli.zoo`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ganbench.cli.zoo_options import open_runtime, runtime_options


def class_option(help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "--class",
        "class_flags",
        multiple=True,
        metavar="K[,K...]",
        help=help_text + " A number or the file's class name; only for a class-conditional file;"
        " repeatable or a comma list.",
    )


def parse_classes(flags: tuple[str, ...]) -> list[str]:
    """``("3", "1,seven")`` -> ["3", "1", "seven"]: numbers or the file's class names,
    made numbers by :func:`ganbench.zoo.runtime.check_classes` once the file is open."""
    classes = [part.strip() for flag in flags for part in flag.split(",")]
    if any(not part for part in classes):
        raise click.UsageError(
            f"--class {','.join(flags)!r} has an empty class: give numbers or names, e.g."
            " --class 3 or --class 0,5"
        )
    return classes


def _picture(rows: list, out: Path) -> None:
    from ganbench.images import grid, save_atomic

    save_atomic(grid(rows), out)
    click.echo(f"wrote {out}")


@click.command()
@click.argument("ref", metavar="NAME|FILE.onnx|models:/NAME@ALIAS")
@click.option("-n", "count", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--nrow", type=click.IntRange(min=1), default=8, show_default=True)
@click.option(
    "--save-z",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Save z (.npy); a conditional file's labels go beside it (Z.labels.npy).",
)
@class_option(
    "Draw N images of class K (several: N of each, the same z for each class, each class"
    " starting a new row). [default: classes drawn uniformly from the seed]"
)
@runtime_options
def sample(
    ref: str,
    count: int,
    output: Path,
    nrow: int,
    save_z: Path | None,
    class_flags: tuple[str, ...],
    seed: int,
    provider: str,
    **where: Any,
) -> None:
    """Draw N images from a zoo generator into a grid (index = row * nrow + column)."""
    import numpy as np

    from ganbench.images import check_output, square_rows, to_uint8
    from ganbench.zoo.runtime import check_classes, labels, latents

    classes = parse_classes(class_flags)
    check_output(output)
    generator = open_runtime(ref, provider, **where)
    info = generator.info
    classes = check_classes(info, classes)
    z = latents(info, count, seed)
    if classes:  # the same z for each class, class by class
        y = np.repeat(np.array(classes, dtype=np.int64), count)
        z = np.tile(z, (len(classes), 1))
    else:
        y = labels(info, count, seed)
    images = to_uint8(generator.generate(z, y), info.output_range)
    blocks = [images[i : i + count] for i in range(0, len(images), count)]
    _picture([row for block in blocks for row in square_rows(block, nrow)], output)
    if save_z is not None:
        np.save(save_z, z)
        click.echo(f"wrote {save_z}")
        if y is not None:
            beside = save_z.with_name(f"{save_z.name.removesuffix('.npy')}.labels.npy")
            np.save(beside, y)
            click.echo(f"wrote {beside}")


@click.command()
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
@class_option(
    "The class of every row (several: row r has the r-th, in turn)."
    " [default: each row keeps the class of the sample it starts from]"
)
@runtime_options
def interpolate(
    ref: str,
    steps: int,
    rows: int,
    between: tuple[str, ...],
    output: Path,
    class_flags: tuple[str, ...],
    seed: int,
    provider: str,
    **where: Any,
) -> None:
    """Latent walks: each row goes in a straight line between two points of z (Fig. 4).

    \b
    Without --between, row r walks from sample 2r to sample 2r+1 of
    `ganbench zoo sample NAME --seed S` (the same seed). A class-conditional
    file's row keeps one class along its walk.
    """
    import numpy as np

    from ganbench.images import check_output, to_uint8
    from ganbench.zoo.runtime import check_classes, labels, latents, walk

    pairs = [_pair(text) for text in between]
    classes = parse_classes(class_flags)
    check_output(output)
    generator = open_runtime(ref, provider, **where)
    info = generator.info
    classes = check_classes(info, classes)
    if pairs:
        count = max(max(p) for p in pairs) + 1
    else:  # row r walks from sample 2r to sample 2r + 1 of `zoo sample --seed S`
        count, pairs = 2 * rows, [(2 * r, 2 * r + 1) for r in range(rows)]
    z = latents(info, count, seed)
    walks = np.concatenate([walk(z[i], z[j], steps) for i, j in pairs])
    y = None
    if info.num_classes:
        # each row the class of the sample it starts from (as `zoo sample` drew it), or --class
        starts = labels(info, count, seed)
        held = [starts[i] for i, _ in pairs]
        held = [classes[r % len(classes)] for r in range(len(pairs))] if classes else held
        y = np.repeat(np.array(held, dtype=np.int64), steps)
    images = to_uint8(generator.generate(walks, y), info.output_range)
    _picture([list(images[r * steps : (r + 1) * steps]) for r in range(len(pairs))], output)


def _pair(text: str) -> tuple[int, int]:
    try:
        i, j = (int(v) for v in text.split(","))
    except ValueError:
        raise click.UsageError(f"--between {text!r}: give two sample indices, e.g. 3,17") from None
    if min(i, j) < 0:
        raise click.UsageError(f"--between {text!r}: indices start at 0")
    return i, j


@click.command()
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
@class_option("The one class of every image (a class-conditional file needs it).")
@runtime_options
def arithmetic(
    ref: str,
    expression: str,
    output: Path,
    variations: int,
    noise: float,
    class_flags: tuple[str, ...],
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
    A class-conditional file draws every image of the one class --class K.
    """
    import numpy as np

    from ganbench.images import check_output, to_uint8
    from ganbench.zoo.runtime import (
        arithmetic_latents,
        check_classes,
        latents,
        parse_arithmetic,
        split_rows,
    )

    terms = parse_arithmetic(expression)
    classes = parse_classes(class_flags)
    check_output(output)
    generator = open_runtime(ref, provider, **where)
    info = generator.info
    classes = check_classes(info, classes)
    if info.num_classes and len(classes) != 1:
        raise click.UsageError(
            f"{info.name} is class-conditional: arithmetic on z keeps one class; give one"
            f" --class K (0 to {info.num_classes - 1})"
        )
    z = latents(info, max(max(ix) for _, ix in terms) + 1, seed)
    rows_z = arithmetic_latents(z, terms, variations, noise, seed)
    all_z = np.concatenate(rows_z)
    y = np.full(len(all_z), classes[0], dtype=np.int64) if classes else None
    images = to_uint8(generator.generate(all_z, y), info.output_range)
    _picture(split_rows(images, rows_z), output)
    written = " ".join(f"{'+-'[sign < 0]} mean{ix}" for sign, ix in terms).lstrip("+ ")
    click.echo(f"rows: each group's samples then their mean; last row: {written}, + variations")
