"""What ``ganbench data info`` reports about one dataset."""

from __future__ import annotations

from collections.abc import Iterator

from ganbench.data.paths import cache_root, dataset_root
from ganbench.data.prepare import read_manifest
from ganbench.errors import GanbenchError
from ganbench.plugins.interfaces import Dataset, DatasetRequest


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def describe(
    dataset: Dataset, *, data_root: str | None, cache_dir: str | None, category: str | None
) -> Iterator[str]:
    """Lines: the description, then per split the files found and number of images."""
    cache = cache_root(cache_dir)
    root = dataset_root(dataset.name, data_root, cache)
    yield f"{dataset.name}: {dataset.summary}"
    yield f"  channels {dataset.channels}, classes {dataset.num_classes or 'none (unlabelled)'}"
    yield (
        f"  resolutions {', '.join(map(str, dataset.resolutions))}"
        f" (default {dataset.default_resolution}); splits {', '.join(dataset.splits)}"
    )
    if dataset.categories:
        yield f"  categories {', '.join(dataset.categories)}"
    yield f"  license: {dataset.license}"
    yield f"  cite: {dataset.citation}"
    yield f"  obtain: {dataset.obtain}"
    yield f"  root: {root}"
    category = category or (dataset.categories[0] if dataset.categories else None)
    options = {"category": category} if category else {}
    for split in dataset.splits:
        try:
            source = dataset.open(
                DatasetRequest(split, dataset.default_resolution, data_root, options), root
            )
            files = source.files()
            size = sum(f.stat().st_size for f in files if f.exists())
            yield f"  {split}: {len(source)} images in {len(files)} file(s), {_size(size)}"
        except GanbenchError as exc:
            yield f"  {split}: not available - {exc}"
    prepared = sorted((cache / "prepared" / dataset.name).glob("*px"))
    for folder in prepared:
        manifest = read_manifest(folder)
        if manifest:
            yield (
                f"  prepared: {folder.name}: {manifest['count']} images"
                f" ({manifest['skipped']} skipped) in {folder}"
            )
