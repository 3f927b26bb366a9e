"""What the ``ganbench zoo`` commands share: the index, cache and registry options, and
finding a generator's verified local file from a zoo name, a file or a ``models:/`` URL.

Imports neither torch nor MLflow: ``list``, ``info``, ``pull`` and the drawing commands
run with onnxruntime, NumPy and Pillow alone.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from ganbench.zoo.index import ZooIndex
    from ganbench.zoo.runtime import ZooGenerator

say = functools.partial(click.echo, err=True)


def index_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option(
        "--cache-dir",
        envvar="GANBENCH_CACHE_DIR",
        help="Cache folder (zoo files go to CACHE/zoo)."
        " [default: $GANBENCH_CACHE_DIR or the user cache folder]",
    )(f)
    f = click.option(
        "--index",
        "index_flag",
        envvar="GANBENCH_ZOO_INDEX",
        help="Zoo index: a TOML file or an http(s) URL."
        " [default: $GANBENCH_ZOO_INDEX or the index shipped with ganbench]",
    )(f)
    return f


def registry_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--registry",
        envvar="MLFLOW_REGISTRY_URI",
        help="MLflow registry for models:/ URLs."
        " [default: $MLFLOW_REGISTRY_URI, else $MLFLOW_TRACKING_URI or sqlite:///mlflow.db]",
    )(f)


def runtime_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option(
        "--provider",
        type=click.Choice(["auto", "cuda", "cpu"]),
        default="auto",
        show_default=True,
        help="onnxruntime provider; auto prefers CUDA when present.",
    )(f)
    f = click.option("--seed", type=int, default=0, show_default=True, help="Seed of the latents.")(
        f
    )
    f = registry_option(f)
    f = index_options(f)
    f = click.option("--progress/--no-progress", default=True, help="Show the download bar.")(f)
    return f


def open_index(index_flag: str | None, cache_dir: str | None) -> tuple[ZooIndex, Path]:
    """The zoo index the options name, and the cache folder."""
    from ganbench.data.paths import cache_root
    from ganbench.zoo.index import index_location, load_index
    from ganbench.zoo.store import zoo_cache

    cache = cache_root(cache_dir)
    return load_index(index_location(index_flag), zoo_cache(cache), say=say), cache


def locate(
    ref: str, index_flag: str | None, cache_dir: str | None, registry: str | None, progress: bool
) -> Path:
    """A verified local ONNX file for ``ref``: a file path, a ``models:/`` URL or a zoo name
    (pulled into the cache first if needed)."""
    from ganbench.data.paths import cache_root
    from ganbench.zoo import store

    if ref.startswith("models:/"):
        return store.pull_registered(ref, cache_root(cache_dir), registry, say=say)
    if ref.endswith(".onnx") or Path(ref).is_file():
        path = Path(ref)
        if not path.is_file():
            raise click.UsageError(f"{ref} does not exist; give a zoo name or an .onnx file")
        return path
    index, cache = open_index(index_flag, cache_dir)
    return store.pull(
        index.get(ref), index, cache, progress=progress, registry_uri=registry, say=say
    )


def open_runtime(ref: str, provider: str, **where: Any) -> ZooGenerator:
    """``ref``'s generator in an onnxruntime session; one line says where it runs."""
    from ganbench.zoo.runtime import open_generator

    generator = open_generator(locate(ref, **where), provider, say=say)  # type: ignore[arg-type]
    say(f"{generator.info.name}: onnxruntime on {generator.provider}")
    return generator
