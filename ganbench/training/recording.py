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
        """The sample grid of the fixed latents, from the generator as it is now."""
        G = self.model.generator
        was_training = G.training
        G.eval()  # batchnorm running statistics: each sample independent of the others
        try:
            return sample_grid(G(self.state.fixed_z))
        finally:
            G.train(was_training)

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
                "steps": steps,
                "state_dict": self.model.generator.state_dict(),
            },
            self.folder.path / "generator.pt",
        )
        self.tracker.log_artifact(generator)
