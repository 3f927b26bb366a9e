"""What surviving costs: one checkpoint of a 64x64 DCGAN (everything an exact resume
needs, written atomically with fsync), and the tracking journal's overhead per training
step against no tracking at all.

``python -m benchmarks.resilience [--device cpu] [--steps 60]`` prints one JSON line; the
suite runs it as its ``resilience`` section.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganbench.plugins import load_registries
from ganbench.plugins.interfaces import ImageArray, ImageShape
from ganbench.rundir.folder import RunFolder
from ganbench.tracking.tracker import NullTracker
from ganbench.training import runner
from ganbench.training.data import make_batches
from ganbench.training.loop import TrainingLoop
from ganbench.training.plan import plan_run
from ganbench.training.speed import resolve_speed


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def checkpoint_cost(
    device: torch.device, repeats: int = 5, resolution: int = 64, batch: int = 128
) -> dict[str, Any]:
    """Seconds to capture and write one checkpoint of the paper's 64x64 DCGAN (3 channels,
    ngf = ndf = 64, Adam states present), against torch.save of the same object to the
    same disk with no fsync and no rename, and against one training step at batch 128."""
    layers = [("bench", {"resolution": resolution})]
    plan = plan_run(load_registries(), "dcgan", "digits", layers)
    model = plan.architecture.build(plan.model, ImageShape(3, resolution))
    model.to(device)
    speed = resolve_speed(device)
    model.accelerate(speed)
    shape = (2 * batch, 3, resolution, resolution)
    data = ImageArray(np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8))
    batches = make_batches(data, batch, device, seed=1, memory_format=speed.memory_format)
    stream = iter(batches)
    model.train_step(next(stream))  # optimizer states exist from here on
    _sync(device)
    start = time.perf_counter()
    for _ in range(3):
        model.train_step(next(stream))
    _sync(device)
    step_s = (time.perf_counter() - start) / 3
    capture, write, plain = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        folder = RunFolder(Path(tmp), {"run_id": "bench"})
        loop = TrainingLoop(plan, model, data, NullTracker(), device, folder, 100, None, batches)
        for i in range(repeats):
            t0 = time.perf_counter()
            state = loop.checkpoints.capture(i + 1)
            t1 = time.perf_counter()
            path = folder.write_checkpoint(state, i + 1)
            t2 = time.perf_counter()
            with (Path(tmp) / "plain.pt").open("wb") as fh:
                torch.save(state, fh)
            t3 = time.perf_counter()
            capture.append(t1 - t0)
            write.append(t2 - t1)
            plain.append(t3 - t2)
        size = path.stat().st_size
    write_s = statistics.median(write)
    capture_s = statistics.median(capture)
    return {
        "model": f"dcgan 3x{resolution}x{resolution}, ngf=ndf=64, Adam states",
        "size_mb": size / 2**20,
        "capture_s": capture_s,
        "write_s": write_s,
        "torch_save_no_fsync_s": statistics.median(plain),
        "batch": batch,
        "step_s": step_s,
        "checkpoint_in_steps": (capture_s + write_s) / step_s,
    }


def _deliver_costs(tmp: Path, grid: Any, n: int = 20) -> dict[str, float]:
    """Main-thread and writer-thread costs of the records a run sends: a log interval's
    metrics and a sample grid, each ``n`` times into a SQLite MLflow store."""
    from ganbench.tracking.outbox.tracker import OutboxTracker
    from ganbench.tracking.tracker import MlflowTracker

    uri = f"sqlite:///{tmp}/costs.db"
    run = MlflowTracker(uri, "bench", "costs")
    folder = RunFolder.create(tmp / "costs", {"run_id": run.run_id, "tracking_uri": uri})
    values = {"loss_d": 0.5, "loss_g": 2.0, "d_real": 0.7, "d_fake": 0.3, "images_per_sec": 1.0}
    out = {}
    for kind in ("metrics", "grid"):
        tracker = OutboxTracker(run, folder, print)
        start = time.perf_counter()
        for step in range(n):
            if kind == "metrics":
                tracker.log_metrics(values, step)
            else:
                tracker.log_image(grid, "samples", step)
        out[f"{kind}_main_ms"] = (time.perf_counter() - start) / n * 1000
        assert tracker.close(300) == 0
        out[f"{kind}_writer_cpu_ms"] = tracker.writer.cpu_seconds / n * 1000
    return out


def _step_ms(plan: Any, data: ImageArray, device: torch.device, tracker: Any) -> float:
    result = runner.train(plan, data, tracker, device, show_progress=False)
    rates = [v for _, v in result.history["images_per_sec"][1:]]  # the first: warm-up
    return plan.train.batch_size / statistics.median(rates) * 1000


def tracking_overhead(device: torch.device, steps: int = 50, repeats: int = 2) -> dict[str, Any]:
    """The journal's cost per training step of a 64x64 digits run (batch 64, metrics every
    10 steps, 10 sample grids per run), from what each record costs where it is spent:
    the training loop's tracker call (main thread) and the background writer's delivery
    to a SQLite MLflow store (its thread's CPU time, which on a CPU whose every core
    trains is taken from the training, at the lowest priority). An end-to-end comparison
    of the same run (metrics only: a grid every few steps of so short a run would be a
    schedule no real run has) with no tracking is reported beside it; on a shared 2-core
    machine its noise is about as large as the effect."""
    from ganbench.data.loading import load_images
    from ganbench.images import sample_grid
    from ganbench.tracking.outbox.tracker import OutboxTracker
    from ganbench.tracking.tracker import MlflowTracker

    registries = load_registries()
    settings = {"resolution": 64, "batch_size": 64, "steps": steps, "log_every": 10}
    settings |= {"checkpoint_every": 0, "checkpoint_minutes": 0, "eval_every": 0}
    settings |= {"sample_every": steps}  # the final grid only, after the measured intervals
    plan = plan_run(registries, "dcgan", "digits", [("bench", settings)])
    data = load_images(plan.dataset, plan.request(), Path(tempfile.gettempdir()), progress=False)
    grid = sample_grid(torch.rand(64, 1, 64, 64) * 2 - 1)  # noise: the costliest to encode
    with tempfile.TemporaryDirectory() as tmp:
        costs = _deliver_costs(Path(tmp), grid)
        e2e: dict[str, list[float]] = {"none": [], "journal": []}
        for r in range(repeats):
            e2e["none"].append(_step_ms(plan, data, device, NullTracker()))
            uri = f"sqlite:///{tmp}/e2e.db"
            run = MlflowTracker(uri, "bench", f"e2e-{r}")
            folder = RunFolder.create(Path(tmp) / run.run_id, {"run_id": run.run_id})
            tracker = OutboxTracker(run, folder, print)
            result = runner.train(plan, data, tracker, device, show_progress=False, folder=folder)
            assert tracker.close(300) == 0
            rates = [v for _, v in result.history["images_per_sec"][1:]]
            e2e["journal"].append(64 / statistics.median(rates) * 1000)
    step_ms = statistics.median(e2e["none"])
    metrics_ms = costs["metrics_main_ms"] + costs["metrics_writer_cpu_ms"]
    grid_ms = costs["grid_main_ms"] + costs["grid_writer_cpu_ms"]

    def bound(run_steps: int) -> float:
        """Per-step cost (% of a step) of a run of ``run_steps`` with the default schedule."""
        return (metrics_ms / 10 + grid_ms * 10 / run_steps) / step_ms * 100

    return {
        "run": "dcgan on digits at 64px, batch 64; metrics every 10 steps, 10 grids per run",
        "end_to_end_run": f"the same, {steps} steps, no grid during the measured steps",
        **costs,
        "step_ms": step_ms,
        "overhead_pct_700_steps": bound(700),
        "overhead_pct_100k_steps": bound(100_000),
        "end_to_end_step_ms": {k: [round(v, 1) for v in vals] for k, vals in e2e.items()},
        "end_to_end_pct": (statistics.median(e2e["journal"]) / step_ms - 1) * 100,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    device = torch.device(args.device)
    print(
        json.dumps(
            {
                "checkpoint": checkpoint_cost(device),
                "tracking": tracking_overhead(device, args.steps),
            }
        )
    )


if __name__ == "__main__":
    main()
