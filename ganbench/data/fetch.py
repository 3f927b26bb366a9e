"""Downloading a dataset's files and unpacking them into the layout its plugin reads."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ganbench.data.download import download
from ganbench.errors import DownloadError, UsageError
from ganbench.plugins.interfaces import Dataset


def fetch_dataset(
    dataset: Dataset, root: Path, splits: Iterable[str], *, progress: bool = True
) -> list[Path]:
    """Download (verified, atomic) every file of ``splits`` into ``root``, then unpack."""
    splits = list(splits)
    unknown = [s for s in splits if s not in dataset.splits]
    if unknown:
        raise UsageError(
            f"dataset {dataset.name} has no split {unknown[0]!r};"
            f" use one of {', '.join(dataset.splits)}"
        )
    remotes = {r.filename: r for s in splits for r in dataset.remote_files(s)}
    if not remotes:
        raise DownloadError(
            f"{dataset.name} cannot be downloaded by ganbench: {dataset.obtain}."
            f" Then pass --data-root FOLDER, or put the files in {root}"
        )
    files = [download(remote, root, progress=progress) for remote in remotes.values()]
    dataset.unpack(files, root)
    return files
