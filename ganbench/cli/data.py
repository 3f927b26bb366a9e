"""``ganbench datasets`` and ``ganbench data info|download|prepare``."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import click

BAD_IMAGES = click.Choice(["skip", "stop"])


def data_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The options every command that touches dataset files shares."""
    f = click.option(
        "--bad-images",
        type=BAD_IMAGES,
        default="skip",
        show_default=True,
        help="Unreadable images: skip them (and list which) or stop at the first.",
    )(f)
    f = click.option(
        "--cache-dir",
        envvar="GANBENCH_CACHE_DIR",
        type=click.Path(file_okay=False),
        help="Downloads and prepared caches. [default: $GANBENCH_CACHE_DIR or"
        " the user cache folder]",
    )(f)
    f = click.option(
        "--data-root",
        type=click.Path(file_okay=False),
        help="Folder that already holds the dataset's files.",
    )(f)
    return f


def typed(name: str, value: Any) -> Any:
    """``value`` if the option ``name`` was typed on this command line, else None.

    A resumed run keeps its own cache and weights folders (recorded when it started):
    only what the user types now overrides them, not a GANBENCH_* variable that happens to
    be set in the resuming shell. Scores depend on the cached reference statistics, so a
    resume that silently switched caches would no longer be the run it continues.
    """
    from click.core import ParameterSource

    source = click.get_current_context().get_parameter_source(name)
    return value if source == ParameterSource.COMMANDLINE else None


def _registries() -> Any:
    from ganbench.plugins import load_registries

    return load_registries()


def _categories(names: tuple[str, ...]) -> str:
    if not names:
        return "-"
    return names[0] if len(names) == 1 else f"{names[0]} (+{len(names) - 1} more)"


def obtain_kind(ds: Any) -> str:
    if ds.bundled:
        return "bundled"
    return "download" if any(ds.remote_files(s) for s in ds.splits) else "by hand"


@click.command()
def datasets() -> None:
    """List the datasets: resolutions, channels, labels, splits, how to obtain them.

    `ganbench data info NAME` shows one in full: license, citation, where to get it.
    """
    from rich.console import Console
    from rich.table import Table

    table = Table(
        "name", "ch", "classes", "resolutions", "splits", "categories", "obtain", box=None
    )
    for ds in _registries().datasets:
        res = ", ".join(f"{r}*" if r == ds.default_resolution else str(r) for r in ds.resolutions)
        table.add_row(
            ds.name,
            str(ds.channels),
            str(ds.num_classes or "-"),
            res,
            ", ".join(ds.splits),
            _categories(ds.categories),
            obtain_kind(ds),
        )
    console = Console()
    if not console.is_terminal:  # pipes and logs: no terminal width to respect
        console = Console(width=120)
    console.print(table)
    console.print(
        "* default resolution; `ganbench data info NAME` for license, citation and"
        " where the files go"
    )


@click.group()
def data() -> None:
    """Dataset files: show what is there, download, prepare a cache."""


@data.command()
@click.argument("name")
@click.option("--category", help="Sub-set(s), comma-separated (LSUN).")
@data_options
def info(
    name: str, category: str | None, data_root: str | None, cache_dir: str | None, bad_images: str
) -> None:
    """Show one dataset: its description, files found, size and number of images."""
    from ganbench.data.inventory import describe

    ds = _registries().datasets.get(name)
    for line in describe(ds, data_root=data_root, cache_dir=cache_dir, category=category):
        click.echo(line)


@data.command()
@click.argument("name")
@click.option("--split", multiple=True, help="Split(s) to fetch (default: all).")
@click.option("--progress/--no-progress", default=True)
@data_options
def download(
    name: str,
    split: tuple[str, ...],
    progress: bool,
    data_root: str | None,
    cache_dir: str | None,
    bad_images: str,
) -> None:
    """Download a dataset's files (checksums verified) and unpack them."""
    from ganbench.data.fetch import fetch_dataset
    from ganbench.data.paths import cache_root, dataset_root

    ds = _registries().datasets.get(name)
    if ds.bundled:
        click.echo(f"{ds.name}: {ds.obtain}")
        return
    root = dataset_root(ds.name, data_root, cache_root(cache_dir))
    for path in fetch_dataset(ds, root, split or ds.splits, progress=progress):
        click.echo(f"ok  {path}")
    click.echo(f"{ds.name} is in {root}")


@data.command()
@click.argument("name")
@click.option("--resolution", "-r", type=int, help="Image size (default: the dataset's).")
@click.option("--split", help="Split (default: train).", default="train", show_default=True)
@click.option("--category", help="Sub-set(s), comma-separated (LSUN).")
@click.option(
    "--force", is_flag=True, help="Rebuild from scratch even if a valid or unfinished cache exists."
)
@click.option(
    "--workers",
    type=int,
    help="Processes that decode (1: this process only). [default: one per core this"
    " process may use]",
)
@click.option(
    "--chunk",
    type=int,
    help="Images per unit of work; an interrupted preparation loses at most one per worker."
    " [default: 256, fewer when the split is small, so every worker gets 16 or more]",
)
@click.option("--progress/--no-progress", default=True)
@data_options
def prepare(
    name: str,
    resolution: int | None,
    split: str,
    category: str | None,
    force: bool,
    workers: int | None,
    chunk: int | None,
    progress: bool,
    data_root: str | None,
    cache_dir: str | None,
    bad_images: str,
) -> None:
    """Decode, center-crop and resize a split once into a memory-mapped uint8 cache.

    Worker processes decode chunks of images straight into the cache's memory map. An
    interrupted preparation (Ctrl-C, SIGTERM, a killed job) keeps what it decoded in
    CACHE_FOLDER.partial/: run the same command again to continue.
    """
    from ganbench.data.paths import cache_root, dataset_root
    from ganbench.data.prepare import prepare as build
    from ganbench.errors import UsageError
    from ganbench.plugins.interfaces import DatasetRequest

    ds = _registries().datasets.get(name)
    resolution = resolution or ds.default_resolution
    if resolution not in ds.resolutions:
        raise UsageError(
            f"dataset {ds.name} is not offered at resolution {resolution};"
            f" use one of {', '.join(map(str, ds.resolutions))}"
        )
    if not ds.cacheable:
        click.echo(f"{ds.name} is decoded in memory on every run; nothing to prepare")
        return
    category = category or (ds.categories[0] if ds.categories else None)
    request = DatasetRequest(
        split, resolution, data_root, {"category": category} if category else {}
    )
    cache = cache_root(cache_dir)
    say = functools.partial(click.echo, err=True)
    array, reused = build(
        ds,
        request,
        dataset_root(ds.name, data_root, cache),
        cache,
        bad_images=bad_images,
        progress=progress,
        force=force,
        workers=workers,
        chunk=chunk,
        say=say,
    )
    state = "already prepared" if reused else "prepared"
    click.echo(
        f"{state}: {len(array)} images of {ds.name} {split} at {resolution}px in"
        f" {array.source.removeprefix('prepared cache ')}"
    )


@data.command()
@click.argument("name")
@click.option("--resolution", "-r", type=int, help="Image size (default: the dataset's).")
@click.option("--split", help="Split (default: train).", default="train", show_default=True)
@click.option("--category", help="Sub-set(s), comma-separated (LSUN).")
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=2000,
    show_default=True,
    help="Autoencoder training steps (batches of 256).",
)
@click.option(
    "--threshold",
    type=float,
    default=None,
    help="A code unit's bit is 1 above this activation. [default: each unit's median]",
)
@click.option(
    "--max-hamming",
    type=click.IntRange(min=0),
    default=None,
    help="Group hashes up to this many differing bits; 0 = exact collisions, as the paper."
    " [default: 40% of the median nearest-neighbour distance, at most 16]",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda[:N].")
@click.option("--progress/--no-progress", default=True)
@data_options
def dedup(
    name: str,
    resolution: int | None,
    split: str,
    category: str | None,
    steps: int,
    threshold: float | None,
    max_hamming: int | None,
    seed: int,
    device: str,
    progress: bool,
    data_root: str | None,
    cache_dir: str | None,
    bad_images: str,
) -> None:
    """Find near duplicates in a split by semantic hashing (the DCGAN paper, Sec. 4.1).

    Trains a denoising, dropout-regularised ReLU autoencoder (3072-128-3072 for RGB) on
    32x32 downsampled centre crops, binarises its code as a hash, groups colliding images,
    and writes the list beside the split's prepared cache; `ganbench run --dedup` then
    trains on one image of each group.
    """
    from ganbench.data import dedup as dd
    from ganbench.data.loading import load_images
    from ganbench.data.paths import cache_root
    from ganbench.errors import UsageError
    from ganbench.plugins.interfaces import DatasetRequest
    from ganbench.training.devices import resolve_device

    ds = _registries().datasets.get(name)
    ds.check_split(split)
    resolution = resolution or ds.default_resolution
    if resolution not in ds.resolutions:
        raise UsageError(
            f"dataset {ds.name} is not offered at resolution {resolution};"
            f" use one of {', '.join(map(str, ds.resolutions))}"
        )
    category = category or (ds.categories[0] if ds.categories else None)
    request = DatasetRequest(
        split, resolution, data_root, {"category": category} if category else {}
    )
    config = dd.DedupConfig(steps=steps, seed=seed)
    if threshold is not None:
        config.threshold = threshold
    if max_hamming is not None:
        config.max_hamming = max_hamming
    cache = cache_root(cache_dir)
    say = functools.partial(click.echo, err=True)
    path, stamp = dd.split_files(ds, request, cache)
    data = load_images(
        ds,
        request,
        cache,
        bad_images=bad_images,
        progress=progress,
        say=say,  # type: ignore[arg-type]
    )
    groups, mse, _ = dd.find_duplicates(
        data.images, config, resolve_device(device), progress=progress, say=say
    )
    found = dd.Duplicates(
        dataset=ds.name,
        split=split,
        resolution=resolution,
        category=category,
        count=len(data),
        fingerprint=stamp,
        groups=groups,
        config=vars(config).copy(),
        reconstruction_mse=mse,
        created=time.strftime("%Y-%m-%dT%H:%M:%S"),
    )
    dd.save(found, path)
    picture = dd.groups_picture(data.images, groups)
    shown = ""
    if picture is not None:
        from ganbench.images import save_atomic

        picture_path = path.with_name(path.name.removesuffix(".json") + ".png")
        save_atomic(picture, picture_path)
        shown = f"; example groups in {picture_path}"
    skipped = len(found.skipped)
    click.echo(
        f"{len(groups)} groups of near duplicates in {len(data)} images of {ds.name} {split}:"
        f" `ganbench run ... --dedup` skips {skipped} ({100 * skipped / len(data):.1f}%);"
        f" list in {path}{shown}"
    )
