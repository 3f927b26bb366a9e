"""What data parallelism costs: DDP's per-step overhead with one process against no DDP
(measured), and the gradient bytes each step all-reduces against NVLink and InfiniBand
bandwidths (on paper, from the networks' parameter counts).

``python -m benchmarks.ddp_overhead [--device cpu] [--resolution 32] [--batch 64]``
prints one JSON line; the suite runs it as its ``distributed`` section.

The measurement alternates blocks of steps of the two models in one process (same data,
same thread count), so drifts of the machine's speed hit both alike; the group is a real
``torch.distributed`` process group of size 1 (gloo on the CPU, NCCL on a GPU), so every
gradient still goes through DDP's buckets and one all-reduce per bucket.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import time
from typing import Any

import numpy as np
import torch

from ganbench.plugins import load_registries
from ganbench.plugins.interfaces import ImageArray, ImageShape
from ganbench.training.data import make_batches
from ganbench.training.distributed import Replicas
from ganbench.training.plan import plan_run
from ganbench.training.speed import resolve_speed

#: Sustained all-reduce bus bandwidth per GPU (NCCL's "busbw", bytes/s), as published for
#: the fabrics people train on: NVLink 4 in an 8-GPU H100/H200 node (NVIDIA's nccl-tests
#: on DGX H100 reach about 360-480 GB/s; 360 is taken), and 400 Gb/s NDR InfiniBand with one
#: NIC per GPU across nodes (about 45 GB/s of the 50 GB/s line rate).
NVLINK_BUSBW = 360e9
INFINIBAND_BUSBW = 45e9
#: Latency per all-reduce call (NCCL ring, small messages), seconds.
NVLINK_LATENCY = 15e-6
INFINIBAND_LATENCY = 30e-6
#: DDP's default bucket size: gradients are reduced in buckets of 25 MiB.
BUCKET_BYTES = 25 * 2**20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _model(plan: Any, shape: ImageShape, device: torch.device, replicas: Replicas | None) -> Any:
    torch.manual_seed(0)
    model = plan.architecture.build(plan.model, shape)
    model.to(device)
    model.accelerate(resolve_speed(device))
    if replicas is not None:
        model.distribute(replicas)
    return model


def measure(
    device: torch.device, resolution: int = 32, batch: int = 64, steps: int = 20, rounds: int = 5
) -> dict[str, Any]:
    """Seconds per training step without DDP and with DDP on a group of one process."""
    import torch.distributed as dist

    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(
        backend, init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1
    )
    try:
        replicas = Replicas(0, 1, 0, 1, backend, device)
        plan = plan_run(
            load_registries(), "dcgan", "digits", [("bench", {"resolution": resolution})]
        )
        shape = ImageShape(3, resolution)
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (4 * batch, 3, resolution, resolution), dtype=np.uint8)
        data = ImageArray(images)
        speed = resolve_speed(device)
        models = {
            "no_ddp": _model(plan, shape, device, None),
            "ddp": _model(plan, shape, device, replicas),
        }
        streams = {
            k: iter(make_batches(data, batch, device, seed=1, memory_format=speed.memory_format))
            for k in models
        }
        for k, m in models.items():  # warm-up: optimizer states, DDP's bucket rebuild
            for _ in range(3):
                m.train_step(next(streams[k]))
        _sync(device)
        times: dict[str, list[float]] = {k: [] for k in models}
        for _ in range(rounds):
            for k, m in models.items():
                start = time.perf_counter()
                for _ in range(steps):
                    m.train_step(next(streams[k]))
                _sync(device)
                times[k].append((time.perf_counter() - start) / steps)
    finally:
        dist.destroy_process_group()
    plain, ddp = statistics.median(times["no_ddp"]), statistics.median(times["ddp"])
    return {
        "device": str(device),
        "backend": backend,
        "resolution": resolution,
        "batch": batch,
        "threads": torch.get_num_threads(),
        "step_s_no_ddp": plain,
        "step_s_ddp_1_process": ddp,
        "overhead": ddp / plain - 1,
        "rounds": {k: v for k, v in times.items()},
    }


def gradient_bytes(resolution: int, channels: int = 3) -> dict[str, int]:
    """fp32 gradient bytes of the paper's DCGAN (ngf = ndf = 64) that one step all-reduces:
    G's after G's loss, D's after D's loss (D's gradients from G's loss are not reduced:
    ``no_sync``, see ganbench_plugins/dcgan/model.py)."""
    plan = plan_run(load_registries(), "dcgan", "digits", [("bench", {"resolution": resolution})])
    model = plan.architecture.build(plan.model, ImageShape(channels, resolution))
    g = sum(p.numel() for p in model.generator.parameters()) * 4
    d = sum(p.numel() for p in model.discriminator.parameters()) * 4
    return {"generator": g, "discriminator": d, "per_step": g + d}


def allreduce_seconds(nbytes: int, ranks: int, busbw: float, latency: float) -> float:
    """Ring all-reduce time of ``nbytes`` in DDP's buckets: busbw is NCCL's bus bandwidth
    (algorithm bandwidth x 2 (n-1)/n), so the bytes take nbytes / busbw; each bucket pays
    the ring's 2 (n-1) latency hops."""
    buckets = max(1, -(-nbytes // BUCKET_BYTES))
    return nbytes / busbw + buckets * 2 * (ranks - 1) * latency


def on_paper(images_per_sec: dict[tuple[int, int], float]) -> list[dict[str, Any]]:
    """Weak-scaling efficiency (batch per GPU fixed) predicted for 8 GPUs on NVLink and
    2 x 8 GPUs over InfiniBand, from one GPU's measured step time at each batch
    (``images_per_sec`` keyed by (resolution, batch), e.g. results/cuda-full.json); 128 px
    from the 64 px step scaled by the FLOP ratio (marked extrapolated).

    No overlap is assumed: each network's gradients (7 to 96 MB) fill one to four of
    DDP's 25 MiB buckets, so most of the all-reduce starts only when that network's
    backward is done; the first small bucket (1 MiB) overlaps, which is noise here."""
    from benchmarks.ceiling import iteration_flops

    measured = dict(images_per_sec)
    ratio = iteration_flops(3, 128)["iteration"] / iteration_flops(3, 64)["iteration"]
    for (resolution, batch), rate in images_per_sec.items():
        if resolution == 64:
            measured[(128, batch)] = rate / ratio
    rows = []
    for (resolution, per_gpu_batch), rate in sorted(measured.items()):
        step = per_gpu_batch / rate
        nbytes = gradient_bytes(resolution)["per_step"]
        for label, ranks, busbw, latency in (
            ("8 GPUs, NVLink", 8, NVLINK_BUSBW, NVLINK_LATENCY),
            ("2 x 8 GPUs, InfiniBand", 16, INFINIBAND_BUSBW, INFINIBAND_LATENCY),
        ):
            comm = allreduce_seconds(nbytes, ranks, busbw, latency)
            rows.append(
                {
                    "resolution": resolution,
                    "extrapolated": (resolution, per_gpu_batch) not in images_per_sec,
                    "per_gpu_batch": per_gpu_batch,
                    "global_batch": per_gpu_batch * ranks,
                    "fabric": label,
                    "grad_mb": nbytes / 1e6,
                    "step_ms": step * 1e3,
                    "allreduce_ms": comm * 1e3,
                    "efficiency": step / (step + comm),
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    result = measure(
        torch.device(args.device), args.resolution, args.batch, args.steps, args.rounds
    )
    result["gradient_bytes"] = {r: gradient_bytes(r) for r in (32, 64, 128)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
