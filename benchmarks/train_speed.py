"""Training throughput of one implementation in a fresh process (so peak memory and time
to the first step are its own): ``python -m benchmarks.train_speed --impl ganbench ...``
prints one JSON line.

Implementations: ``ganbench`` (the runner's data path and model with the fast-path
defaults for the device), ``ganbench-plain`` (every switch off: fp32, NCHW, per-parameter
Adam), ``textbook`` (benchmarks/textbook.py with its DataLoader) and ``textbook-on-device``
(the same loop with the data already normalised on the device).
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np
import torch

IMPLS = ("ganbench", "ganbench-plain", "textbook", "textbook-on-device")


def synthetic_images(n: int, channels: int, resolution: int, seed: int = 0) -> np.ndarray:
    """uint8 N x H x W x C images (content does not change the cost)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, resolution, resolution, channels), dtype=np.uint8)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _ganbench(images: np.ndarray, batch: int, device: torch.device, plain: bool):
    from ganbench.interfaces import ImageArray, ImageShape, Speed
    from ganbench.plugins import load_registries
    from ganbench.training.data import make_batches
    from ganbench.training.speed import resolve_speed

    speed = Speed(device) if plain else resolve_speed(device)
    data = ImageArray(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    arch = load_registries().architectures.get("dcgan")
    model = arch.build(arch.config_class(), ImageShape(data.shape.channels, data.shape.resolution))
    model.to(device)
    model.accelerate(speed)
    batches = iter(make_batches(data, batch, device, 0, speed.memory_format))

    def step() -> None:
        model.train_step(next(batches))  # losses stay on the device, as in the runner

    return step, speed.params()


def _textbook(images: np.ndarray, batch: int, device: torch.device, on_device: bool):
    from benchmarks import textbook

    model = textbook.TextbookDCGAN(images.shape[-1], images.shape[1], device)
    make = textbook.device_batches if on_device else textbook.loader_batches
    batches = make(images, batch, device)

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
        step, settings = _ganbench(images, batch, device, plain=impl == "ganbench-plain")
    else:
        step, settings = _textbook(images, batch, device, on_device=impl == "textbook-on-device")
    step()
    _sync(device)
    first = time.perf_counter() - started
    for _ in range(2):  # warm-up: allocator, cuDNN autotuning, worker start
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
