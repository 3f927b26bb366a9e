"""The training loop itself: one step after another, each piece of work at its interval.

It says when (log, sample, score, checkpoint, stop) and leaves the what to its parts:
:mod:`~ganbench.training.recording` (means, pictures, generator.pt),
:mod:`~ganbench.training.evaluation` (scores, best.pt),
:mod:`~ganbench.training.checkpointing` (last.pt, and loading one back) and
:mod:`~ganbench.training.decisions` (stop signals and the checkpoint clock, agreed by all
ranks in a distributed run). A run stopped at any step boundary stays resumable from its
last checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ganbench.errors import GanbenchError
from ganbench.metrics.session import Scorer
from ganbench.plugins.interfaces import GanModel, ImageArray
from ganbench.progress import TrainingProgress
from ganbench.rundir.checkpoint import DiskFull
from ganbench.rundir.folder import RunFolder
from ganbench.rundir.heartbeat import Heartbeat
from ganbench.signals import Preempted, StopNow, StopSignals, signal_name
from ganbench.tracking.tracker import Tracker
from ganbench.training.checkpointing import Checkpoints, LoopState
from ganbench.training.decisions import Decisions
from ganbench.training.distributed import Replicas
from ganbench.training.ema import GeneratorEMA
from ganbench.training.evaluation import TrainingScores
from ganbench.training.graphs import CapturedStep, EagerStep
from ganbench.training.plan import RunPlan
from ganbench.training.recording import Recorder
from ganbench.training.statistics import StepStatistics


def _real_batches(batches: Iterator[Any], n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The next ``n`` batches of this replica's stream, concatenated along dim 0 (each is
    this rank's share of a global batch, so n of them are its share of n global batches),
    and their labels where the stream carries them (a conditional model), else None.
    The stream's cursor moves past all n: a checkpoint after the step resumes after them."""
    drawn = [next(batches) for _ in range(n)]
    if not isinstance(drawn[0], tuple):
        return (drawn[0] if n == 1 else torch.cat(drawn)), None
    images, labels = zip(*drawn, strict=True)
    if n == 1:
        return images[0], labels[0]
    return torch.cat(images), torch.cat(labels)


def learning_rates(model: GanModel) -> list[list[float]]:
    """The learning rate of each parameter group of each of the model's optimizers."""
    optimizers = model.optimizers()
    if not optimizers:
        raise GanbenchError(
            f"{type(model).__name__} does not hand its optimizers to the runner"
            " (GanModel.optimizers), so lr_decay cannot schedule them; use lr_decay=none"
        )
    return [[float(group["lr"]) for group in opt.param_groups] for opt in optimizers]


def decay_linearly(model: GanModel, base: list[list[float]], step: int, steps: int) -> None:
    """Set the rates of ``step`` (1-based): base x (1 - (step - 1) / steps), a function of
    the step alone, so a resumed run sets what the uninterrupted one did."""
    factor = 1.0 - (step - 1) / steps
    for opt, rates in zip(model.optimizers(), base, strict=True):
        for group, rate in zip(opt.param_groups, rates, strict=True):
            group["lr"] = rate * factor


class TrainingLoop:
    """One training loop: its steps, and when each of its parts does its work."""

    def __init__(
        self,
        plan: RunPlan,
        model: GanModel,
        data: ImageArray,
        tracker: Tracker,
        device: torch.device,
        folder: RunFolder,
        steps: int,
        scorer: Scorer | None,
        batches: Any,
        *,
        replicas: Replicas | None = None,
        heartbeat: Heartbeat | None = None,
    ) -> None:
        self.plan, self.model, self.tracker = plan, model, tracker
        self.folder, self.steps, self.batches = folder, steps, batches
        self.replicas = replicas
        #: The run's heartbeat thread (rank 0 only); told the last completed step.
        self.heartbeat = heartbeat
        cfg = plan.train
        scorer = scorer if cfg.eval_every else None
        self.sample_every = cfg.sample_every or max(1, steps // 10)
        fixed = torch.Generator().manual_seed(cfg.seed + 2)
        self.state = LoopState(model.sample_latent(cfg.grid_size, generator=fixed).to(device))
        #: The moving average of G that samples, scores and is exported (``ema`` > 0).
        self.ema = GeneratorEMA(model.generator, cfg.ema, cfg.ema_start) if cfg.ema else None
        if self.ema is not None:
            model.averaged_generator = self.ema.module
        self.checkpoints = Checkpoints(
            plan, model, batches, folder, tracker, device, scorer, self.state, replicas, self.ema,
            class_names=data.class_names,
        )  # fmt: skip
        self.decisions = Decisions(cfg, replicas)
        self.recorder = Recorder(plan, model, data, tracker, folder, self.state)
        self.scores = (
            TrainingScores(scorer, model, tracker, folder, self.state, self.checkpoints, replicas)
            if scorer
            else None
        )
        #: Each optimizer's learning rates as the model set them (``lr_decay`` scales them).
        self.base_lrs = learning_rates(model) if cfg.lr_decay != "none" else None
        #: The steps' statistics, summed on the device between logging steps.
        self.statistics = StepStatistics(device)
        #: Runs one training step: eager here; ``train`` sets the captured one on CUDA.
        self.step_once: EagerStep | CapturedStep = EagerStep(model, self.statistics)

    @property
    def main(self) -> bool:
        """This process logs and writes (always, unless it is a rank other than 0)."""
        return self.replicas is None or self.replicas.is_main

    def run(self, show_progress: bool, stop: StopSignals | None) -> dict[str, float]:
        """Train to the end; returns the last logged means."""
        cfg = self.plan.train
        desc = f"{self.plan.architecture.name} on {self.plan.dataset.name}"
        last: dict[str, float] = {}
        batches = iter(self.batches)
        per_step = self.model.real_batches_per_step
        try:
            with TrainingProgress(
                self.steps, desc, enabled=show_progress and self.main, start=self.state.step
            ) as progress:
                mark, mark_step = time.perf_counter(), self.state.step
                for step in range(self.state.step + 1, self.steps + 1):
                    if self.base_lrs is not None:
                        decay_linearly(self.model, self.base_lrs, step, self.steps)
                    self.step_once(*_real_batches(batches, per_step))
                    if self.ema is not None:
                        self.ema.update(self.model.generator, step)
                    self.state.step = step
                    if self.heartbeat is not None:  # the last completed step, from now
                        self.heartbeat.step = step
                    if step % cfg.log_every == 0 or step == self.steps:
                        now = time.perf_counter()
                        # cfg.batch_size is the global batch: the rate is the group's,
                        # in real images consumed (per_step batches a step).
                        rate = (step - mark_step) * cfg.batch_size * per_step / (now - mark)
                        last = self._log(step, rate, stop)
                        mark, mark_step = now, step
                        progress.advance(step, last)
                    else:
                        progress.advance(step)
                    if self.main and step % self.sample_every == 0 and step != self.steps:
                        self.recorder.log_samples(step)
                    if self.scores and (step % cfg.eval_every == 0 or step == self.steps):
                        self.scores.evaluate(step)
                    if step == self.steps:
                        break  # the end: _finish writes the last checkpoint
                    signum, due = self.decisions.decide(step, stop)
                    if signum is not None:
                        self._stop(signum, step)
                    if due:
                        self._checkpoint(step)
            self._finish()
        except DiskFull as exc:
            # The run cannot go on here, but nothing is lost: it fails, resumable from
            # the last checkpoint that was written whole, once there is room.
            self._mark_resumable()
            raise DiskFull(f"{exc}; then {self._resume_hint()}") from None
        except (Preempted, StopNow, KeyboardInterrupt) as exc:
            self._mark_resumable()
            if isinstance(exc, StopNow):
                exc.note = self._resume_hint()
            raise
        return last

    def _log(
        self, step: int, images_per_sec: float, stop: StopSignals | None = None
    ) -> dict[str, float]:
        """Log the statistics' means over the steps since the last logging step.

        The only host sync of the interval: all scalars come back in one transfer (in a
        distributed run, after one all-reduce that makes them means over the ranks)."""
        keys, stacked = self.statistics.take()
        if self.replicas is not None:
            stacked = self.replicas.sum_(stacked).div_(self.replicas.world)
            self.decisions.agree(stop)
        values = dict(zip(keys, stacked.tolist(), strict=True))
        return self.recorder.log_means(step, values, images_per_sec)

    def _checkpoint(self, step: int) -> Path:
        self.decisions.restart_clock()
        return self.checkpoints.write(step)

    def _resume_hint(self) -> str:
        if self.state.checkpointed is None:
            return "no checkpoint was written yet: start the run again"
        return f"resumable from step {self.state.checkpointed}: ganbench resume {self.folder.path}"

    def _stop(self, signum: int, step: int) -> None:
        path = self._checkpoint(step)
        raise Preempted(
            signum,
            f"stopped by {signal_name(signum)} at step {step} of {self.steps}: checkpoint"
            f" {path} written, run {self.tracker.run_id} marked KILLED. Resume it with:"
            f" ganbench resume {self.folder.path}",
        )

    def _mark_resumable(self) -> None:
        if self.state.checkpointed is not None:
            self.tracker.set_tags(
                {
                    "ganbench.resumable": f"from step {self.state.checkpointed}:"
                    f" ganbench resume {self.tracker.run_id}"
                }
            )

    def _finish(self) -> None:
        if not self.main:
            self._checkpoint(self.steps)  # rank 0 writes it; this rank checks its weights
            return
        self.recorder.final_pictures(self.steps)
        self._checkpoint(self.steps)
        self.recorder.final_generator(self.steps)
        self.tracker.delete_tag("ganbench.resumable")
