"""The local cache of zoo files: pulled once, verified by sha256 before and after.

A file enters the cache only through :func:`ganbench.data.download.download` (free space
checked first, ``.part``, resume, checksum, then a durable rename) or, for ``models:/``
URLs, through a temporary folder that is checked before the rename. Every use re-hashes
the cached file, so a file damaged on disk is caught, deleted and fetched again instead of
generating garbage.

Layout of ``CACHE/zoo``: a generator's folder is named after it (``NAME/NAME.onnx``, as
since the first release); ganbench's own folders start with "_" (``_indexes`` for cached
remote indexes, ``_registry`` for ``models:/`` pulls), which no zoo name can, so an index
listing a generator called ``indexes`` or ``registry`` cannot share, or ``zoo remove``,
them. (Copies cached by older versions under ``indexes/`` and ``registry/`` are fetched
again once.)
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from ganbench.data.download import check_digest, check_free_space, download, file_digest
from ganbench.files.sealed import commit_file
from ganbench.plugins.interfaces import RemoteFile
from ganbench.zoo.index import ZooEntry, ZooIndex

REGISTRY_CACHE = "_registry"


def zoo_cache(cache: Path) -> Path:
    """Zoo files live in ``CACHE/zoo`` (the cache folder of ``--cache-dir`` or
    ``$GANBENCH_CACHE_DIR``)."""
    return cache / "zoo"


def cached_path(entry: ZooEntry, cache: Path) -> Path:
    return zoo_cache(cache) / entry.name / f"{entry.name}.onnx"


def registered_path(cache: Path, name: str, version: str) -> Path:
    """Where version ``version`` of registered model ``name`` is cached."""
    return zoo_cache(cache) / REGISTRY_CACHE / name / f"v{version}" / f"{name}.onnx"


def is_cached(entry: ZooEntry, cache: Path, verify: bool = True) -> bool:
    """True when the cached file matches the index: re-hashed, or with ``verify=False``
    only its size checked (cheap enough to list a whole index)."""
    path = cached_path(entry, cache)
    if not verify:
        return path.is_file() and path.stat().st_size == entry.size
    return path.is_file() and file_digest(path, "sha256") == entry.sha256


def _cached(path: Path, sha256: str, against: str, say: Callable[[str], None]) -> bool:
    """True when ``path`` holds the file with ``sha256``; a damaged or outdated copy is
    deleted, and the user told, so that it is fetched again."""
    if not path.is_file():
        return False
    got = file_digest(path, "sha256")
    if got == sha256:
        return True
    path.unlink()
    say(
        f"cached {path} does not match {against} (sha256 {got}, expected {sha256});"
        " deleted it, fetching it again"
    )
    return False


def _from_registry(uri: str, path: Path, sha256: str, registry: str | None) -> Path:
    """A registered model's file, through a temporary folder, checked, then renamed."""
    from ganbench.zoo.registry import download_registered

    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".pull-", dir=path.parent) as tmp:
        fetched = download_registered(uri, Path(tmp), registry)
        check_digest(fetched, "sha256", sha256, f"{path.name} from {uri}")
        commit_file(fetched, path)  # the temporary folder is beside it: one filesystem
    return path


def pull(
    entry: ZooEntry,
    index: ZooIndex,
    cache: Path,
    *,
    progress: bool = True,
    registry_uri: str | None = None,
    say: Callable[[str], None] = print,
) -> Path:
    """The verified cached file of ``entry``, downloaded first when needed (hashed once
    per use)."""
    path = cached_path(entry, cache)
    if _cached(path, entry.sha256, "the index", say):
        return path
    url = index.resolve(entry.url)
    say(f"pulling {entry.name} ({entry.size:,} bytes) from {url}")
    if url.startswith("models:/"):
        from ganbench.tracking.tracker import check_reachable
        from ganbench.zoo.registry import registry_uri as resolve_registry

        registry = resolve_registry(registry_uri)
        check_reachable(registry)
        check_free_space(path.parent, entry.size, path.name)
        return _from_registry(url, path, entry.sha256, registry)
    remote = RemoteFile(url, path.name, sha256=entry.sha256, size=entry.size)
    return download(remote, path.parent, progress=progress)


def remove(entry: ZooEntry, cache: Path) -> bool:
    """Delete a generator's cached files (its torch-fidelity file too); True when there
    were any."""
    folder = cached_path(entry, cache).parent
    found = False
    for path in (folder, folder.with_name(f"{entry.name}.torch-fidelity")):
        if path.exists():
            shutil.rmtree(path)
            found = True
    return found


def pull_registered(
    uri: str, cache: Path, registry: str | None, say: Callable[[str], None] = print
) -> Path:
    """The verified cached file of a ``models:/NAME@ALIAS`` (or ``/VERSION``) URI.

    The alias is resolved to a version in the registry each time (aliases move); the file
    of each version is cached once and checked against the version's sha256 tag.
    """
    from ganbench.zoo.registry import lookup, parse_models_uri, registry_uri

    registry = registry_uri(registry)
    name, _, _ = parse_models_uri(uri)
    version, sha = lookup(uri, registry)
    path = registered_path(cache, name, version)  # lookup checked both: no "..", no "/"
    if _cached(path, sha, "the registry's sha256 tag", say):
        return path
    return _from_registry(f"models:/{name}/{version}", path, sha, registry)
