"""What a training run leaves besides checkpoints: logged means, sample grids, the final
pictures and ``generator.pt``.

Apart from the loop so that it only says when; this module says what is logged and
written, and refuses to go on with values that are no longer finite (a diverged run).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ganbench.errors import TrainingDiverged
from ganbench.images import loss_curves, sample_grid
from ganbench.plugins.interfaces import GanModel, ImageArray
from ganbench.rundir import checkpoint
from ganbench.rundir.folder import RunFolder
from ganbench.tracking.tracker import Tracker
from ganbench.training.checkpointing import LoopState
from ganbench.training.plan import RunPlan

SAMPLES_KEY = "samples"


class Recorder:
    """Logs a run's means and samples, and writes its final pictures and generator."""

    def __init__(
        self,
        plan: RunPlan,
        model: GanModel,
        data: ImageArray,
        tracker: Tracker,
        folder: RunFolder,
        state: LoopState,
    ) -> None:
        self.plan, self.model, self.data = plan, model, data
        self.tracker, self.folder, self.state = tracker, folder, state

    def log_means(
        self, step: int, values: dict[str, float], images_per_sec: float
    ) -> dict[str, float]:
        """Log the means of the steps since the last logging step, with the rate; a value
        that is not finite marks the run diverged and ends it."""
        bad = {k: v for k, v in values.items() if not math.isfinite(v)}
        if bad:
            self.tracker.log_metrics({k: v for k, v in values.items() if k not in bad}, step)
            which = ", ".join(f"{k}={v}" for k, v in bad.items())
            # A study reads this tag: a diverged trial is a result, with its step.
            self.tracker.set_tags({"ganbench.diverged": f"step {step}: {which}"})
            raise TrainingDiverged(
                f"training diverged at step {step}: {which}. Lower the learning rate"
                " (--set lr=...) or check the data; the run is marked FAILED"
            )
        values["images_per_sec"] = images_per_sec
        self.tracker.log_metrics(values, step)
        self.state.record(values, step)
        return values

    @torch.no_grad()
    def grid(self) -> Any:
        """The sample grid of the fixed latents, from the generator that samples (G, or
        its moving average) as it is now; for a conditional model one row per class, the
        same latents in every row (so a column shows one latent across the classes)."""
        G = self.model.sampler
        z, y, columns = self.state.fixed_z, None, 8
        if self.model.num_classes:
            k = self.model.num_classes
            columns = min(len(z), math.ceil(len(z) / k))
            z = z[:columns].repeat(k, 1)
            y = torch.arange(k, device=z.device).repeat_interleave(columns)
        was_training = G.training
        G.eval()  # batchnorm running statistics: each sample independent of the others
        try:
            return sample_grid(self.model.generate(z, y), nrow=columns)
        finally:
            G.train(was_training)

    def _class_names(self) -> tuple[str, ...]:
        names = self.data.class_names
        return tuple(names) if len(names) == self.model.num_classes > 0 else ()

    def log_samples(self, step: int) -> None:
        self.tracker.log_image(self.grid(), SAMPLES_KEY, step)

    def final_pictures(self, steps: int) -> None:
        """The last sample grid (logged and as samples_final.png) and loss_curves.png."""
        grid = self.grid()
        self.tracker.log_image(grid, SAMPLES_KEY, steps)
        grid_path = self.folder.path / "samples_final.png"
        grid.save(grid_path)
        self.tracker.log_artifact(grid_path)
        curves = loss_curves(self.state.history, self.folder.path / "loss_curves.png")
        self.tracker.log_artifact(curves)

    def final_generator(self, steps: int) -> None:
        """``generator.pt``: the generator alone, with what it takes to build it again."""
        generator = checkpoint.save_atomic(
            {
                "format": checkpoint.GENERATOR_FORMAT,
                "architecture": self.plan.architecture.name,
                "config": dict(vars(self.plan.model)),
                "image_shape": [self.data.shape.channels, self.data.shape.resolution],
                "num_classes": self.model.num_classes,
                **({"class_names": list(names)} if (names := self._class_names()) else {}),
                "steps": steps,
                # the generator that was sampled and scored: G's moving average if kept
                "generator": "live" if self.model.averaged_generator is None else "ema",
                "state_dict": self.model.sampler.state_dict(),
            },
            self.folder.path / "generator.pt",
        )
        self.tracker.log_artifact(generator)
