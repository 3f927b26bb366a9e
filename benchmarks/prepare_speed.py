"""``python -m benchmarks.prepare_speed``: images/s of ``ganbench data prepare`` on an
LSUN-format LMDB, per number of worker processes, against torchvision's ``LSUN`` read
through a ``DataLoader`` with 2 workers doing the same resize and crop, in the same run.

The LMDB is synthetic but shaped like the release: WebP photos whose short side is
256 px (the long side 256-400), under hex SHA-1 keys. The pictures are smooth noise over
seven octaves, edges and grain, so that WebP files and decode times are those of photos
(about 14 KB each, LSUN bedroom's mean), not of flat colours. It is generated
deterministically (``--images``), outside the timings, and kept in ``--data`` for the
next run.

Both sides are timed end to end, from a cold start of the reader to the last image:
ganbench lists the keys, starts its workers, decodes, crops and resizes into the memory
map, journals, and seals the cache; torchvision lists the keys (and writes its key cache,
in a temporary working folder), starts its workers, decodes, resizes, crops, converts to
tensors and collates batches of 64. Each timing runs in a process of its own; a result
is the best of ``--repeat`` rounds over all readers (the machine may be shared: a slow
spell hits every reader alike). The LMDB is read once before, so all read it from the
page cache.

    python -m benchmarks.prepare_speed --images 3000 --workers 1,2 --out result.json
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

#: (cells along the short side, amplitude): smooth noise from room-sized blobs to texture.
OCTAVES = ((3, 70.0), (6, 45.0), (12, 28.0), (24, 18.0), (48, 14.0), (96, 20.0), (128, 17.0))


def photo(seed: int) -> np.ndarray:
    """A 256 x W x 3 uint8 picture (W in 256..400, as LSUN's short side is 256): smooth
    noise, ten flat rectangles (edges, like furniture) and grain. As WebP at quality 75
    it takes about 14 KB, the mean of LSUN bedroom's 3 million (43 GB)."""
    rng = np.random.default_rng(seed)
    height, width = 256, int(rng.integers(256, 401))
    pixels = np.full((height, width, 3), 128.0) + rng.uniform(-40, 40, 3)
    for cells, amplitude in OCTAVES:
        coarse = rng.integers(0, 256, (cells, -(-cells * width // height), 3), dtype=np.uint8)
        smooth = Image.fromarray(coarse).resize((width, height), Image.BICUBIC)
        pixels += (np.asarray(smooth, dtype=np.float64) - 128.0) * (amplitude / 128.0)
    picture = Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    for _ in range(10):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        w, h = (int(v) for v in rng.integers(10, 120, 2))
        draw.rectangle((x, y, x + w, y + h), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    pixels = np.asarray(picture, dtype=np.float64) + rng.normal(0.0, 7.0, (height, width, 3))
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def encoded(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(photo(seed)).save(buffer, format="WEBP", quality=75)
    return buffer.getvalue()


def make_lmdb(root: Path, images: int) -> Path:
    """``root/bedroom_train_lmdb`` with ``images`` photos (made once; reused if complete)."""
    import lmdb

    folder = root / "bedroom_train_lmdb"
    done = folder / "complete"
    if done.exists() and done.read_text() == str(images):
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    with ProcessPoolExecutor() as pool:
        values = list(pool.map(encoded, range(images), chunksize=64))
    size = sum(map(len, values))
    env = lmdb.open(str(folder), map_size=2 * size + (64 << 20))
    with env.begin(write=True) as txn:
        for i, value in enumerate(values):
            txn.put(hashlib.sha1(f"bedroom/{i}".encode()).hexdigest().encode(), value)
    env.close()
    done.write_text(str(images))
    return folder


def read_once(folder: Path) -> int:
    """Read every value (into the page cache): bytes read."""
    import lmdb

    env = lmdb.open(str(folder), readonly=True, lock=False)
    with env.begin() as txn:
        total = sum(len(v) for _, v in txn.cursor())
    env.close()
    return total


def ganbench_seconds(root: Path, workers: int, resolution: int) -> float:
    from ganbench.data.prepare import prepare
    from ganbench.plugins.interfaces import DatasetRequest
    from ganbench_plugins.lsun import LsunDataset

    request = DatasetRequest("train", resolution, str(root), {"category": "bedroom"})
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        prepare(
            LsunDataset(),
            request,
            root,
            Path(cache),
            workers=workers,
            progress=False,
            say=lambda _: None,
        )
        return time.perf_counter() - start


def torchvision_seconds(root: Path, workers: int, resolution: int) -> float:
    import torch
    from torchvision import datasets, transforms

    transform = transforms.Compose(
        [
            transforms.Resize(resolution),
            transforms.CenterCrop(resolution),
            transforms.PILToTensor(),
        ]
    )
    with tempfile.TemporaryDirectory() as cwd, _working_folder(cwd):
        start = time.perf_counter()
        data = datasets.LSUN(str(root), classes=["bedroom_train"], transform=transform)
        loader = torch.utils.data.DataLoader(data, batch_size=64, num_workers=workers)
        n = sum(len(images) for images, _ in loader)
        seconds = time.perf_counter() - start
    assert n == len(data)
    return seconds


def timed(impl: str, root: Path, workers: int, resolution: int) -> float:
    """Seconds of one reading, in a process of its own: a cold start, as a user's, and
    py-lmdb allows one open environment per database and process."""
    cmd = [sys.executable, "-m", "benchmarks.prepare_speed", "--time", impl, "--data", str(root)]
    cmd += ["--workers", str(workers), "--resolution", str(resolution)]
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=repo)
    if done.returncode != 0:
        raise RuntimeError(f"{impl} with {workers} workers failed: {done.stderr.strip()}")
    return float(done.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def _working_folder(path: str) -> Any:
    """torchvision's LSUN writes its key cache into the current folder."""
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "cpu"


def measure(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(args.data).resolve()
    folder = make_lmdb(root, args.images)
    stored = read_once(folder)
    cores = len(os.sched_getaffinity(0))
    configs = [("ganbench", w) for w in args.workers]
    configs += [("torchvision", w) for w in args.torchvision_workers]
    times: dict[tuple[str, int], list[float]] = {c: [] for c in configs}
    for _ in range(args.repeat):  # rounds, so that a slow spell of the machine hits all
        for impl, workers in configs:
            times[impl, workers].append(timed(impl, root, workers, args.resolution))
    rows: list[dict[str, Any]] = []
    for (impl, workers), seconds in times.items():
        best = min(seconds)
        rows.append(
            {
                "impl": impl,
                "workers": workers,
                "seconds": best,
                "images_per_sec": args.images / best,
                "all_seconds": seconds,
            }
        )
        print(f"[prepare] {impl} {workers} workers: {args.images / best:,.0f} img/s", flush=True)
    one = next((r for r in rows if r["impl"] == "ganbench" and r["workers"] == 1), None)
    for row in rows:
        if one and row["impl"] == "ganbench":
            row["efficiency"] = row["images_per_sec"] / (row["workers"] * one["images_per_sec"])
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{cpu_name()}, {cores} cores",
        "python": platform.python_version(),
        "images": args.images,
        "mean_webp_kb": stored / args.images / 1024,
        "resolution": args.resolution,
        "rows": rows,
    }


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"{result['machine']}, {result['date']}: {result['images']:,} WebP photos"
        f" ({result['mean_webp_kb']:.1f} KB each) to {result['resolution']} px",
        "",
        "| reader | workers | images/s | seconds | scaling efficiency |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for row in result["rows"]:
        eff = f"{row['efficiency']:.0%}" if "efficiency" in row else ""
        name = "ganbench data prepare" if row["impl"] == "ganbench" else "torchvision LSUN"
        lines.append(
            f"| {name} | {row['workers']} | {row['images_per_sec']:,.0f}"
            f" | {row['seconds']:.2f} | {eff} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.prepare_speed", description=__doc__)
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument(
        "--workers",
        default=None,
        help="ganbench worker counts, comma-separated [default: 1,2 and all cores]",
    )
    parser.add_argument("--torchvision-workers", default="2")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument(
        "--data",
        default=str(Path(tempfile.gettempdir()) / "ganbench-prepare-speed"),
        help="where the synthetic LMDB is made (and kept)",
    )
    parser.add_argument("--out", type=Path, help="write the result as JSON here too")
    parser.add_argument("--time", choices=("ganbench", "torchvision"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.time:  # one timing, in the process timed() started
        timer = ganbench_seconds if args.time == "ganbench" else torchvision_seconds
        print(timer(Path(args.data), int(args.workers), args.resolution))
        return
    cores = len(os.sched_getaffinity(0))
    args.workers = sorted({int(w) for w in (args.workers or f"1,2,{cores}").split(",")})
    args.torchvision_workers = [int(w) for w in args.torchvision_workers.split(",")]
    result = measure(args)
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result), file=sys.stderr)
    print(markdown(result))


if __name__ == "__main__":
    main()
