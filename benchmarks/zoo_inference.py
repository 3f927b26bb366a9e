"""Zoo inference: onnxruntime against the PyTorch generator it was exported from, in one run.

The benchmark builds a DCGAN generator (weights do not change the cost), exports it the
way ``ganbench zoo export`` does, and times both on the same latents; the ratio is what a
zoo user gains from onnxruntime (and from not loading torch at all)::

    python benchmarks/zoo_inference.py                                 # digits: 1x32x32
    python benchmarks/zoo_inference.py --channels 3 --resolution 64    # LSUN/CelebA size
    python benchmarks/zoo_inference.py --threads 8 --batches 1,64,256
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: allocations, kernel selection
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(
    channels: int, resolution: int, batches: list[int], threads: int, repeats: int
) -> list[dict]:
    """onnxruntime (CPU provider) and torch eager on the same generator and latents."""
    import onnxruntime as ort
    import torch

    from ganbench.plugins import load_registries
    from ganbench.plugins.interfaces import ImageShape
    from ganbench.zoo.export import DEFAULT_OPSET, export_onnx

    torch.manual_seed(0)
    torch.set_num_threads(threads)
    arch = load_registries().architectures.get("dcgan")
    config = arch.config_class()
    generator = arch.build(config, ImageShape(channels, resolution)).generator.eval()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "g.onnx"
        export_onnx(generator, config.z_dim, path, DEFAULT_OPSET)
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    rows = []
    for n in batches:
        z = np.random.default_rng(0).uniform(-1, 1, (n, config.z_dim)).astype(np.float32)
        zt = torch.from_numpy(z)

        def run_ort(z: np.ndarray = z) -> np.ndarray:
            return session.run(["images"], {"z": z})[0]

        def run_torch(zt: torch.Tensor = zt) -> np.ndarray:
            with torch.inference_mode():
                return generator(zt).numpy()

        diff = float(np.abs(run_ort() - run_torch()).max())
        t_ort = median_seconds(run_ort, repeats)
        t_torch = median_seconds(run_torch, repeats)
        rows.append(
            {
                "image": f"{channels}x{resolution}x{resolution}",
                "batch": n,
                "threads": threads,
                "onnxruntime_ms": t_ort * 1e3,
                "torch_eager_ms": t_torch * 1e3,
                "speedup": t_torch / t_ort,
                "max_abs_diff": diff,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--batches", default="1,64")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    rows = measure(args.channels, args.resolution, batches, args.threads, args.repeats)
    print(f"DCGAN generator, CPU, {args.threads} threads, median of {args.repeats}")
    print("image     batch  onnxruntime ms  torch eager ms  speed-up  max |diff|")
    for r in rows:
        print(
            f"{r['image']:8s}  {r['batch']:5d}  {r['onnxruntime_ms']:14.2f}"
            f"  {r['torch_eager_ms']:14.2f}  {r['speedup']:7.2f}x  {r['max_abs_diff']:.1e}"
        )


if __name__ == "__main__":
    main()
