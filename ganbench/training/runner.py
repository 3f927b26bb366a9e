"""The training loop: data on the device, alternating updates, tracking, checkpoints.

The model owns its training step; this module owns the loop around it: what is logged
when, where pictures and checkpoints go, and that a run always ends with a status.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ganbench import checkpoint
from ganbench.errors import TrainingDiverged
from ganbench.images import loss_curves, sample_grid
from ganbench.interfaces import GanModel, ImageArray
from ganbench.metrics.session import Scorer
from ganbench.progress import TrainingProgress
from ganbench.tracking import Tracker
from ganbench.training.data import DeviceBatches, make_batches
from ganbench.training.plan import RunPlan
from ganbench.training.speed import resolve_speed

SAMPLES_KEY = "samples"


@dataclass
class RunResult:
    """What a finished run produced (paths are local copies, valid until cleanup)."""

    run_id: str
    steps: int
    history: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    final_metrics: dict[str, float] = field(default_factory=dict)


@contextmanager
def tracked(tracker: Tracker) -> Iterator[Tracker]:
    """End the run FINISHED on success, KILLED on Ctrl-C, FAILED on any error."""
    try:
        yield tracker
    except KeyboardInterrupt:
        tracker.finish("KILLED")
        raise
    except BaseException:
        tracker.finish("FAILED")
        raise
    else:
        tracker.finish("FINISHED")


def total_steps(plan: RunPlan, steps_per_epoch: int) -> int:
    if plan.train.steps is not None:
        return plan.train.steps
    return max(1, math.ceil(plan.train.epochs * steps_per_epoch))


def train(
    plan: RunPlan,
    data: ImageArray,
    tracker: Tracker,
    device: torch.device,
    show_progress: bool = True,
    scorer: Scorer | None = None,
) -> RunResult:
    """Train ``plan`` on ``data`` on ``device``, logging to ``tracker``; ends with a status."""
    with tracked(tracker), tempfile.TemporaryDirectory(prefix="ganbench-") as tmp:
        cfg = plan.train
        torch.manual_seed(cfg.seed)
        speed = resolve_speed(
            device,
            channels_last=cfg.channels_last,
            precision=cfg.precision,
            adam=cfg.adam,
            compile=cfg.compile,
            threads=cfg.threads,
        )
        model = plan.architecture.build(plan.model, data.shape)
        model.to(device)
        model.accelerate(speed)
        batches = make_batches(
            data, cfg.batch_size, device, seed=cfg.seed + 1, memory_format=speed.memory_format
        )
        steps = total_steps(plan, batches.steps_per_epoch)
        tracker.log_params(
            {
                **plan.params(),
                "device": str(device),
                "num_images": len(data),
                "total_steps": steps,
                "dataset_source": data.source,
                "data_on_device": isinstance(batches, DeviceBatches),
                **speed.params(),
            }
        )
        tracker.set_tags(
            {"ganbench.architecture": plan.architecture.name, "ganbench.dataset": plan.dataset.name}
        )
        loop = _Loop(plan, model, data, tracker, device, Path(tmp), steps, scorer)
        return loop.run(iter(batches), show_progress)


class _Loop:
    """The state of one training loop (kept off ``train`` so each piece stays short)."""

    def __init__(
        self,
        plan: RunPlan,
        model: GanModel,
        data: ImageArray,
        tracker: Tracker,
        device: torch.device,
        workdir: Path,
        steps: int,
        scorer: Scorer | None = None,
    ) -> None:
        self.plan, self.model, self.data, self.tracker = plan, model, data, tracker
        self.device, self.workdir, self.steps = device, workdir, steps
        self.scorer = scorer if plan.train.eval_every else None
        self.best: tuple[float, int] | None = None  # (FID, step) of checkpoints/best.pt
        cfg = plan.train
        self.sample_every = cfg.sample_every or max(1, steps // 10)
        self.checkpoint_every = cfg.checkpoint_every or steps
        fixed = torch.Generator().manual_seed(cfg.seed + 2)
        self.fixed_z = model.sample_latent(cfg.grid_size, generator=fixed).to(device)
        self.history: dict[str, list[tuple[int, float]]] = {}

    def run(self, batches: Iterator[torch.Tensor], show_progress: bool) -> RunResult:
        cfg = self.plan.train
        desc = f"{self.plan.architecture.name} on {self.plan.dataset.name}"
        last = {}
        with TrainingProgress(self.steps, desc, enabled=show_progress) as progress:
            mark, mark_step = time.perf_counter(), 0
            for step in range(1, self.steps + 1):
                stats = self.model.train_step(next(batches))
                if step % cfg.log_every == 0 or step == self.steps:
                    now = time.perf_counter()
                    last = self._log(
                        stats, step, (step - mark_step) * cfg.batch_size / (now - mark)
                    )
                    mark, mark_step = now, step
                    progress.advance(step, last)
                else:
                    progress.advance(step)
                if step % self.sample_every == 0 and step != self.steps:
                    self.tracker.log_image(self._grid(), SAMPLES_KEY, step)
                if step % self.checkpoint_every == 0 and step != self.steps:
                    self._checkpoint(step)
                if self.scorer and (step % cfg.eval_every == 0 or step == self.steps):
                    self._evaluate(step)
        self._finish()
        return RunResult(self.tracker.run_id, self.steps, self.history, last)

    def _log(self, stats: Any, step: int, images_per_sec: float) -> dict[str, float]:
        # The only host sync of the interval: all scalars come back in one transfer.
        keys = list(stats)
        values = dict(
            zip(keys, torch.stack([stats[k].float() for k in keys]).tolist(), strict=True)
        )
        bad = {k: v for k, v in values.items() if not math.isfinite(v)}
        if bad:
            self.tracker.log_metrics({k: v for k, v in values.items() if k not in bad}, step)
            which = ", ".join(f"{k}={v}" for k, v in bad.items())
            raise TrainingDiverged(
                f"training diverged at step {step}: {which}. Lower the learning rate"
                " (--set lr=...) or check the data; the run is marked FAILED"
            )
        values["images_per_sec"] = images_per_sec
        self.tracker.log_metrics(values, step)
        for k, v in values.items():
            self.history.setdefault(k, []).append((step, v))
        return values

    @torch.no_grad()
    def _grid(self) -> Any:
        G = self.model.generator
        was_training = G.training
        G.eval()  # batchnorm running statistics: each sample independent of the others
        try:
            return sample_grid(G(self.fixed_z))
        finally:
            G.train(was_training)

    def _evaluate(self, step: int) -> None:
        """Score the generator now; keep the best-FID weights as checkpoints/best.pt.

        DCGAN often peaks and then degrades late in training, so the last checkpoint is
        not necessarily the best one; both are kept and tagged.
        """
        assert self.scorer is not None
        result = self.scorer.score(self.model, f"training step {step}")
        self.tracker.log_metrics(result.scores, step)
        self.tracker.set_tags(result.tags)
        for k, v in result.scores.items():
            self.history.setdefault(k, []).append((step, v))
        fid_name = self.scorer.fid_name()
        fid = result.scores.get(fid_name) if fid_name else None
        if fid is not None and math.isfinite(fid) and (self.best is None or fid < self.best[0]):
            self.best = (fid, step)
            self._checkpoint(step, "best.pt", {fid_name: fid})
            self.tracker.set_tags(
                {
                    "checkpoint.best": f"checkpoints/best.pt: step {step}, {fid_name} {fid:.6g}",
                    "checkpoint.best_step": str(step),
                }
            )

    def _checkpoint(
        self, step: int, name: str = "last.pt", scores: dict[str, float] | None = None
    ) -> Path:
        path = checkpoint.save_atomic(
            {
                "format": checkpoint.CHECKPOINT_FORMAT,
                "step": step,
                "plan": self.plan.params(),
                "state": self.model.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "scores": dict(scores or {}),
            },
            self.workdir / name,
        )
        self.tracker.log_artifact(path, "checkpoints")
        return path

    def _finish(self) -> None:
        grid = self._grid()
        self.tracker.log_image(grid, SAMPLES_KEY, self.steps)
        grid_path = self.workdir / "samples_final.png"
        grid.save(grid_path)
        self.tracker.log_artifact(grid_path)
        self.tracker.log_artifact(loss_curves(self.history, self.workdir / "loss_curves.png"))
        self._checkpoint(self.steps)
        self.tracker.set_tags({"checkpoint.last": f"checkpoints/last.pt: step {self.steps}"})
        generator = checkpoint.save_atomic(
            {
                "format": checkpoint.GENERATOR_FORMAT,
                "architecture": self.plan.architecture.name,
                "config": dict(vars(self.plan.model)),
                "image_shape": [self.data.shape.channels, self.data.shape.resolution],
                "steps": self.steps,
                "state_dict": self.model.generator.state_dict(),
            },
            self.workdir / "generator.pt",
        )
        self.tracker.log_artifact(generator)
