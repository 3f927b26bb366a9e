"""Where downloads and prepared caches live: ``--cache-dir``, ``GANBENCH_CACHE_DIR``, or
the platform's user cache folder (``~/.cache/ganbench`` on Linux)."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "GANBENCH_CACHE_DIR"


def cache_root(flag: str | None = None) -> Path:
    """The cache folder: the flag, else the environment variable, else platformdirs'."""
    if flag:
        return Path(flag).expanduser().resolve()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser().resolve()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("ganbench"))


def dataset_root(name: str, data_root: str | None, cache: Path) -> Path:
    """The folder a dataset's files are read from: ``--data-root`` or the download cache."""
    if data_root:
        return Path(data_root).expanduser().resolve()
    return cache / "datasets" / name
