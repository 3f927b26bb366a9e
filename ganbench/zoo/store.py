"""The local cache of zoo files: pulled once, verified by sha256 before and after.

A file enters the cache only through :func:`ganbench.data.download.download` (``.part``,
resume, checksum, then an atomic rename) or, for ``models:/`` URLs, through a temporary
folder that is checked before the rename. Every use re-hashes the cached file, so a file
damaged on disk is caught, deleted and fetched again instead of generating garbage.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from ganbench.data.download import download, file_digest
from ganbench.errors import DownloadError
from ganbench.interfaces import RemoteFile
from ganbench.zoo.index import ZooEntry, ZooIndex


def zoo_cache(cache: Path) -> Path:
    """Zoo files live in ``CACHE/zoo`` (the cache folder of ``--cache-dir`` or
    ``$GANBENCH_CACHE_DIR``)."""
    return cache / "zoo"


def cached_path(entry: ZooEntry, cache: Path) -> Path:
    return zoo_cache(cache) / entry.name / f"{entry.name}.onnx"


def is_cached(entry: ZooEntry, cache: Path) -> bool:
    """True when a cached file exists and still matches the index (re-hashed)."""
    path = cached_path(entry, cache)
    return path.is_file() and file_digest(path, "sha256") == entry.sha256


def pull(
    entry: ZooEntry,
    index: ZooIndex,
    cache: Path,
    *,
    progress: bool = True,
    registry_uri: str | None = None,
    say: Callable[[str], None] = print,
) -> Path:
    """The verified cached file of ``entry``, downloaded first when needed.

    A cached file that no longer matches the index (damaged, or the index moved on) is
    deleted and fetched again, and the user is told.
    """
    path = cached_path(entry, cache)
    if path.is_file():
        got = file_digest(path, "sha256")
        if got == entry.sha256:
            return path
        path.unlink()
        say(
            f"cached {path} does not match the index (sha256 {got}, index {entry.sha256});"
            " deleted it, fetching it again"
        )
    url = index.resolve(entry.url)
    if url.startswith("models:/"):
        from ganbench.zoo.registry import download_registered

        with tempfile.TemporaryDirectory(prefix=".pull-", dir=_ensure(path.parent)) as tmp:
            fetched = download_registered(url, Path(tmp), registry_uri)
            _check_fetched(fetched, entry, url)
            os.replace(fetched, path)
        return path
    remote = RemoteFile(url, path.name, sha256=entry.sha256, size=entry.size)
    return download(remote, path.parent, progress=progress)


def _ensure(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _check_fetched(fetched: Path, entry: ZooEntry, url: str) -> None:
    got = file_digest(fetched, "sha256")
    if got != entry.sha256:
        raise DownloadError(
            f"checksum mismatch for {entry.name}.onnx from {url}: expected sha256"
            f" {entry.sha256}, got {got}; the download was deleted. The registered model"
            " has changed: publish it again or update the index"
        )


def remove(entry: ZooEntry, cache: Path) -> bool:
    """Delete a generator's cached files; True when there were any."""
    folder = cached_path(entry, cache).parent
    if not folder.exists():
        return False
    shutil.rmtree(folder)
    return True


def pull_registered(
    uri: str, cache: Path, registry: str | None, say: Callable[[str], None] = print
) -> Path:
    """The verified cached file of a ``models:/NAME@ALIAS`` (or ``/VERSION``) URI.

    The alias is resolved to a version in the registry each time (aliases move); the file
    of each version is cached once and checked against the version's sha256 tag.
    """
    from ganbench.zoo.registry import download_registered, lookup, parse_models_uri, registry_uri

    registry = registry_uri(registry)
    name, _, _ = parse_models_uri(uri)
    version, sha = lookup(uri, registry)
    path = zoo_cache(cache) / "registry" / name / f"v{version}" / f"{name}.onnx"
    if path.is_file():
        got = file_digest(path, "sha256")
        if got == sha:
            return path
        path.unlink()
        say(f"cached {path} does not match the registry (sha256 {got}, tag {sha}); fetching it")
    with tempfile.TemporaryDirectory(prefix=".pull-", dir=_ensure(path.parent)) as tmp:
        fetched = download_registered(f"models:/{name}/{version}", Path(tmp), registry)
        got = file_digest(fetched, "sha256")
        if got != sha:
            raise DownloadError(
                f"checksum mismatch for {uri} (version {version}): the registry's tag says"
                f" sha256 {sha}, the file has {got}; the download was deleted"
            )
        os.replace(fetched, path)
    return path
