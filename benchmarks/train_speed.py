"""Training throughput of one implementation in a fresh process (so peak memory and time
to the first step are its own): ``python -m benchmarks.train_speed --impl ganbench ...``
prints one JSON line.

Implementations:

- ``ganbench``: the runner's data path, model and step with the fast-path defaults for
  the device (on CUDA each step replays as one CUDA graph), statistics read back every
  10 steps as the runner logs them;
- ``ganbench-eager``: the same with ``graphs=off`` (the eager fast path);
- ``ganbench-plain``: every switch off (fp32, NCHW, per-parameter Adam, no graphs);
- ``ganbench-compile``, ``ganbench-reduce-overhead``, ``ganbench-max-autotune``: the fast
  path with G and D under ``torch.compile`` in that mode (and no hand-made graphs);
- ``ganbench-bf16``, ``ganbench-fp32``: the fast path in that precision (the CPU's
  default is bf16 where it has bf16 instructions, fp32 elsewhere);
- ``ganbench-no-cudnn-benchmark``: the default without cuDNN's autotuner (CUDA);
- ``textbook``: pytorch/examples' dcgan/main.py loop (benchmarks/textbook.py) fed by its
  DataLoader with 2 workers from image files; ``textbook-on-device``: the same loop with
  the data already normalised on the device.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

GANBENCH = {
    "ganbench": {},
    "ganbench-eager": {"graphs": "off"},
    "ganbench-compile": {"compile": "on"},
    "ganbench-reduce-overhead": {"compile": "on", "compile_mode": "reduce-overhead"},
    "ganbench-max-autotune": {"compile": "on", "compile_mode": "max-autotune"},
    "ganbench-bf16": {"precision": "bf16"},
    "ganbench-fp32": {"precision": "fp32"},
    "ganbench-no-cudnn-benchmark": {"cudnn_benchmark": "off"},
}
IMPLS = (*GANBENCH, "ganbench-plain", "textbook", "textbook-on-device")
#: The runner reads the statistics back once per log interval (its default log_every).
LOG_EVERY = 10
#: Untimed steps after the first: allocator, cuDNN, loader workers, and the CUDA graph's
#: warm-up and capture (ganbench.training.graphs.WARMUP_STEPS eager steps, then capture).
WARMUP = 5


def synthetic_images(n: int, channels: int, resolution: int, seed: int = 0) -> np.ndarray:
    """uint8 N x H x W x C images (content does not change the cost)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, resolution, resolution, channels), dtype=np.uint8)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _ganbench(images: np.ndarray, batch: int, device: torch.device, impl: str):
    from ganbench.plugins import load_registries
    from ganbench.plugins.interfaces import ImageArray, ImageShape, Speed
    from ganbench.training.data import make_batches
    from ganbench.training.graphs import graphs_unavailable, make_step
    from ganbench.training.speed import resolve_speed
    from ganbench.training.statistics import StepStatistics

    plain = impl == "ganbench-plain"
    speed = Speed(device) if plain else resolve_speed(device, **GANBENCH[impl])
    data = ImageArray(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    arch = load_registries().architectures.get("dcgan")
    model = arch.build(arch.config_class(), ImageShape(data.shape.channels, data.shape.resolution))
    if speed.graphs and graphs_unavailable(model, distributed=False):
        raise SystemExit(graphs_unavailable(model, distributed=False))
    model.to(device)
    model.accelerate(speed)
    batches = iter(make_batches(data, batch, device, 0, speed.memory_format))
    statistics = StepStatistics(device)
    failed: list[str] = []
    step_once = make_step(model, statistics, speed.graphs, failed.append)
    settings = {**speed.params(), "captured": False}

    def step() -> None:
        step_once(next(batches))
        if step_once.statistics.count == LOG_EVERY:
            statistics.take()[1].tolist()  # the runner's one host sync per log interval
        if failed:
            raise SystemExit(f"capture failed: {failed[0]}")
        settings["captured"] = step_once.captured

    return step, settings


def _textbook(images: np.ndarray, batch: int, device: torch.device, on_device: bool):
    from benchmarks import textbook

    model = textbook.TextbookDCGAN(images.shape[-1], images.shape[1], device)
    if on_device:
        batches = textbook.device_batches(images, batch, device)
    else:  # main.py reads image files: write them once, outside the timed steps
        folder = Path(tempfile.mkdtemp(prefix="ganbench-textbook-"))
        textbook.write_image_files(images, folder)
        batches = textbook.folder_batches(folder, images.shape[1], batch, device)

    def step() -> None:
        model.step(next(batches))

    return step, {}


def measure(
    impl: str, device: torch.device, resolution: int, batch: int, channels: int, steps: int
) -> dict:
    images = synthetic_images(batch * 8, channels, resolution)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    if impl.startswith("ganbench"):
        step, settings = _ganbench(images, batch, device, impl)
    else:
        step, settings = _textbook(images, batch, device, on_device=impl == "textbook-on-device")
    step()
    _sync(device)
    first = time.perf_counter() - started
    for _ in range(WARMUP):
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    seconds = time.perf_counter() - start
    peak = (
        torch.cuda.max_memory_allocated() / 2**20
        if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    return {
        "impl": impl,
        "device": str(device),
        "resolution": resolution,
        "batch": batch,
        "channels": channels,
        "steps": steps,
        "images_per_sec": batch * steps / seconds,
        "ms_per_step": seconds / steps * 1000,
        "time_to_first_step_s": first,
        "peak_memory_mb": peak,
        "peak_memory_kind": "CUDA max allocated" if device.type == "cuda" else "process max RSS",
        "threads": torch.get_num_threads(),
        **settings,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--impl", choices=IMPLS, required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    torch.manual_seed(0)
    result = measure(
        args.impl,
        torch.device(args.device),
        args.resolution,
        args.batch,
        args.channels,
        args.steps,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
