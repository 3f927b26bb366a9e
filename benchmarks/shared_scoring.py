"""Scoring during a distributed run: rank 0 alone (the others wait) against the ranks
sharing the samples (``generated_features`` with ``replicas``), on the same generator.

``torchrun --standalone --nproc-per-node 2 -m benchmarks.shared_scoring [--samples 2000]``
prints one JSON line from rank 0 (seconds of each way, and whether the features agree).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from ganbench.metrics.features import generated_features, generator_sampler
from ganbench.plugins import load_registries
from ganbench.plugins.interfaces import ImageShape
from ganbench.training.distributed import join
from ganbench.training.plan import plan_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    replicas = join(args.device)
    registries = load_registries()
    plan = plan_run(registries, "dcgan", "digits", [("bench", {"resolution": 32})])
    torch.manual_seed(0)
    model = plan.architecture.build(plan.model, ImageShape(1, 32)).to(replicas.device)
    extractor = registries.extractors.get("digits-cnn").load(None, replicas.device)
    times = {}
    features = {}
    for way in ("alone", "shared", "alone", "shared"):
        replicas.barrier()
        start = time.perf_counter()
        sample = generator_sampler(model, replicas.device, 3)
        if way == "shared":
            out = generated_features(
                extractor, sample, args.samples, progress=False, replicas=replicas
            )
        elif replicas.is_main:
            out = generated_features(extractor, sample, args.samples, progress=False)
        else:
            out = None
        replicas.barrier()
        times.setdefault(way, []).append(time.perf_counter() - start)
        if out is not None:
            features[way] = next(iter(out.values()))
    if replicas.is_main:
        result = {
            "ranks": replicas.world,
            "backend": replicas.backend,
            "device": str(replicas.device),
            "samples": args.samples,
            "threads_per_rank": torch.get_num_threads(),
            "alone_s": min(times["alone"]),
            "shared_s": min(times["shared"]),
            "speedup": min(times["alone"]) / min(times["shared"]),
            "features_equal": bool(np.array_equal(features["alone"], features["shared"])),
        }
        print(json.dumps(result))
    replicas.shutdown()


if __name__ == "__main__":
    main()
