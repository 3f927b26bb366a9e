"""The training loop: data on the device, alternating updates, tracking, checkpoints.

The model owns its training step; this module owns the loop around it: what is logged
when, where pictures and checkpoints go, that a run always ends with a status, and that
it can stop at any step boundary and later continue from its checkpoint exactly as if it
had never stopped (same weights, same metrics, bit for bit on the CPU).

In a distributed run (``replicas``) every rank runs this loop on its share of each global
batch; rank 0 alone logs, samples and writes checkpoints, and the others wait for it at
the checkpoint. Decisions that must be the same on every rank (stop on a signal, a
checkpoint on the clock) are agreed at the logging steps, with the all-reduce that
averages the logged values: one host sync per logging interval, as in one process.
"""

from __future__ import annotations

import contextlib
import datetime
import math
import random
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganbench.errors import GanbenchError, TrainingDiverged, UsageError
from ganbench.images import loss_curves, sample_grid
from ganbench.metrics.scoring import PROVENANCE_DIR, provenance_name
from ganbench.metrics.session import Scorer
from ganbench.plugins.interfaces import GanModel, ImageArray
from ganbench.progress import TrainingProgress
from ganbench.rundir import checkpoint
from ganbench.rundir.checkpoint import DiskFull
from ganbench.rundir.folder import RunFolder, host
from ganbench.rundir.heartbeat import Heartbeat
from ganbench.signals import Preempted, StopNow, StopSignals, signal_name
from ganbench.tracking.tracker import Tracker
from ganbench.training import rng
from ganbench.training.data import DeviceBatches, fits_on_device, make_batches
from ganbench.training.distributed import Replicas, weights_digest
from ganbench.training.graphs import (
    CapturedStep,
    EagerStep,
    make_step,
    reported_fallback,
    speed_for,
)
from ganbench.training.plan import RunPlan
from ganbench.training.speed import resolve_speed
from ganbench.training.statistics import StepStatistics

SAMPLES_KEY = "samples"
#: Params that describe where a run trains, not what it is: they may differ at a resume
#: (and so may every ``distributed.*`` one: a checkpoint resumes at any world size).
ENVIRONMENT_PARAMS = ("device", "dataset_source", "data_on_device")
ENVIRONMENT_PREFIXES = ("speed.", "distributed.")


@dataclass
class RunResult:
    """What a finished run produced (paths are local copies, valid until cleanup)."""

    run_id: str
    steps: int
    history: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    final_metrics: dict[str, float] = field(default_factory=dict)
    folder: Path | None = None


@dataclass
class Resume:
    """A checkpoint to continue from (``ganbench.runs.resume`` finds and checks it)."""

    checkpoint: dict[str, Any]
    path: Path
    #: This is the run's Nth resume.
    number: int
    #: The params the run logged when it started (environment ones are compared here).
    logged: dict[str, str]

    @property
    def step(self) -> int:
        return int(self.checkpoint["step"])

    def tags(self, environment: dict[str, Any]) -> dict[str, str]:
        """The resume's record: when, from which step, on which host; and what differs
        from where the run started (device, speed settings, data path)."""
        changed = [
            f"{k} {v} (was {self.logged[k]})"
            for k, v in environment.items()
            if k in self.logged and str(v) != self.logged[k]
        ]
        world = self.logged.get("distributed.world_size")
        if world and "distributed.world_size" not in environment:
            changed.append(f"one process without torchrun (was {world} processes)")
        when = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        text = f"{when} from step {self.step} ({self.path.name}) on host {host()}"
        if changed:
            text += "; " + ", ".join(changed)
        return {f"ganbench.resume.{self.number}": text, "ganbench.resumes": str(self.number)}


@contextmanager
def tracked(tracker: Tracker) -> Iterator[Tracker]:
    """End the run FINISHED on success, KILLED when stopped (signal, Ctrl-C), FAILED on
    any error."""
    try:
        yield tracker
    except (KeyboardInterrupt, StopNow, Preempted):
        tracker.finish("KILLED")
        raise
    except BaseException:
        tracker.finish("FAILED")
        raise
    else:
        tracker.finish("FINISHED")


def total_steps(plan: RunPlan, batches_per_epoch: int) -> int:
    """The run's length in steps: ``steps``; or ``d_steps`` D updates, each on its own
    real batch; or ``epochs`` passes over the data. A step takes the architecture's real
    batches per step, n (5 for a WGAN-GP critic trained 5 times per G update), so
    ``d_steps`` is ``ceil(d_steps / n)`` steps and an epoch ``batches_per_epoch / n``."""
    if plan.train.steps is not None:
        return plan.train.steps
    n = plan.architecture.real_batches_per_step(plan.model)
    if plan.train.d_steps is not None:
        return math.ceil(plan.train.d_steps / n)
    return max(1, math.ceil(plan.train.epochs * batches_per_epoch / n))


def length_params(plan: RunPlan, steps: int) -> dict[str, int]:
    """The run's length as logged at its start (and checked by a resume): ``total_steps``
    (G updates), ``real_batches_per_step`` (n, the D updates per G update) and
    ``real_batches`` (total_steps * n: D updates, each on its own real batch, Lucic et
    al.'s budget)."""
    n = plan.architecture.real_batches_per_step(plan.model)
    return {"total_steps": steps, "real_batches_per_step": n, "real_batches": steps * n}


def _check_batches_per_step(plan: RunPlan, model: GanModel) -> None:
    """The runner feeds what the model takes; epochs were counted with what the
    architecture said. A plugin whose two answers differ would train on the wrong number
    of images per step or for the wrong length: refuse it up front."""
    said = plan.architecture.real_batches_per_step(plan.model)
    takes = model.real_batches_per_step
    if isinstance(takes, bool) or not isinstance(takes, int) or takes < 1 or takes != said:
        raise GanbenchError(
            f"architecture {plan.architecture.name!r} says a step takes {said} real"
            f" batches, and the model it built takes {takes!r}"
            " (GanModel.real_batches_per_step); the plugin must give the same whole number"
        )


def train(
    plan: RunPlan,
    data: ImageArray,
    tracker: Tracker,
    device: torch.device,
    show_progress: bool = True,
    scorer: Scorer | None = None,
    *,
    folder: RunFolder | None = None,
    resume: Resume | None = None,
    stop: StopSignals | None = None,
    say: Any = print,
    replicas: Replicas | None = None,
) -> RunResult:
    """Train ``plan`` on ``data`` on ``device``, logging to ``tracker``; ends with a status.

    Checkpoints go to ``folder`` (a temporary one when None, for benchmarks); ``resume``
    continues from a checkpoint; ``stop`` is checked at every step boundary (at every
    logging step in a distributed run, where ``replicas`` is this process's group).
    """
    with contextlib.ExitStack() as stack:
        if folder is None:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ganbench-")))
            folder = RunFolder(tmp, {"run_id": tracker.run_id})
        stack.enter_context(tracked(tracker))
        # Beats from a thread while the run lives (a long score included); it stops
        # before the run's status is set (the stack unwinds in reverse).
        main = replicas is None or replicas.is_main
        heartbeat = Heartbeat(folder, resume.step if resume else 0, tracker) if main else None
        if heartbeat is not None:
            stack.enter_context(heartbeat)
        cfg = plan.train
        # Every generator a plugin may draw from starts from the run's seed (and so
        # starts equal on every rank of a distributed run).
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        speed = resolve_speed(
            device,
            channels_last=cfg.channels_last,
            precision=cfg.precision,
            adam=cfg.adam,
            compile=cfg.compile,
            threads=cfg.threads,
            compile_mode=cfg.compile_mode,
            graphs=cfg.graphs,
            cudnn_benchmark=cfg.cudnn_benchmark,
        )
        model = plan.architecture.build(plan.model, data.shape)
        _check_batches_per_step(plan, model)
        speed = speed_for(speed, model, replicas is not None)
        if cfg.graphs == "on" and not speed.graphs:
            say(f"note: training steps are not captured as CUDA graphs: {speed.graphs_off}")
        model.to(device)
        model.accelerate(speed)
        shard, on_device = (0, 1), None
        if replicas is not None:
            replicas.sync_bn = cfg.sync_bn
            model.distribute(replicas)
            shard = (replicas.rank, replicas.world)
            # the same kind of batches on every rank: on the device only if all fit
            on_device = all(replicas.all_gather(fits_on_device(data, device)))
        batches = make_batches(
            data,
            cfg.batch_size,
            device,
            seed=cfg.seed + 1,
            memory_format=speed.memory_format,
            shard=shard,
            on_device=on_device,
        )
        steps = total_steps(plan, batches.steps_per_epoch)
        environment = {
            "device": str(device),
            "dataset_source": data.source,
            "data_on_device": isinstance(batches, DeviceBatches),
            **data.notes,
            **speed.params(),
            **(replicas.params(cfg.batch_size) if replicas else {}),
        }
        loop = _Loop(plan, model, data, tracker, device, folder, steps, scorer, batches)
        loop.replicas = replicas
        loop.heartbeat = heartbeat
        loop.step_once = make_step(
            model, loop.statistics, speed.graphs, reported_fallback(tracker, say)
        )
        if resume is None:
            tracker.log_params(
                {
                    **plan.params(),
                    "num_images": len(data),
                    **length_params(plan, steps),
                    **environment,
                }
            )
            tracker.set_tags(
                {
                    "ganbench.architecture": plan.architecture.name,
                    "ganbench.dataset": plan.dataset.name,
                }
            )
        else:
            _check_same_data(resume, environment)
            tracker.set_tags(resume.tags(environment))
            for note in loop.restore(resume):
                say(f"note: {note}")
        return loop.run(show_progress, stop)


def _real_batches(batches: Iterator[torch.Tensor], n: int) -> torch.Tensor:
    """The next ``n`` batches of this replica's stream, concatenated along dim 0 (each is
    this rank's share of a global batch, so n of them are its share of n global batches).
    The stream's cursor moves past all n: a checkpoint after the step resumes after them."""
    if n == 1:
        return next(batches)
    return torch.cat([next(batches) for _ in range(n)])


def _check_same_data(resume: Resume, environment: dict[str, Any]) -> None:
    """A resume continues the data order of the run only on the same images: a changed
    duplicates list (or one given or dropped) would silently draw other batches."""
    key = "data.duplicates_sha256"
    before, now = resume.logged.get(key), environment.get(key)
    if before != now:
        raise UsageError(
            f"the run trained {'with' if before else 'without'} a near-duplicates list"
            f" ({before or 'none'}), this resume has {now or 'none'}; resume with the list"
            " the run started with (the same --dedup setting and `ganbench data dedup` list)"
        )


class _Loop:
    """The state of one training loop (kept off ``train`` so each piece stays short)."""

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
    ) -> None:
        self.plan, self.model, self.data, self.tracker = plan, model, data, tracker
        self.device, self.folder, self.steps, self.batches = device, folder, steps, batches
        self.scorer = scorer if plan.train.eval_every else None
        self.best: tuple[float, int] | None = None  # (FID, step) of checkpoints/best.pt
        cfg = plan.train
        self.sample_every = cfg.sample_every or max(1, steps // 10)
        fixed = torch.Generator().manual_seed(cfg.seed + 2)
        self.fixed_z = model.sample_latent(cfg.grid_size, generator=fixed).to(device)
        self.history: dict[str, list[tuple[int, float]]] = {}
        self.step = 0
        #: Step of the newest checkpoint on disk (None before the first).
        self.checkpointed: int | None = None
        self._next_checkpoint = time.monotonic() + cfg.checkpoint_minutes * 60
        self.replicas: Replicas | None = None
        #: The run's heartbeat thread (rank 0 only); told the last completed step.
        self.heartbeat: Heartbeat | None = None
        #: (stop signal, checkpoint due) as agreed by all ranks at the last logging step.
        self._agreed: tuple[int | None, bool] = (None, False)
        #: The steps' statistics, summed on the device between logging steps.
        self.statistics = StepStatistics(device)
        #: Runs one training step: eager here; ``train`` sets the captured one on CUDA.
        self.step_once: EagerStep | CapturedStep = EagerStep(model, self.statistics)

    @property
    def main(self) -> bool:
        """This process logs and writes (always, unless it is a rank other than 0)."""
        return self.replicas is None or self.replicas.is_main

    # ---- resuming -----------------------------------------------------------------------
    def restore(self, resume: Resume) -> list[str]:
        """Load everything the next step depends on; the random generators go last, so
        that nothing between here and the first step draws from them."""
        saved = resume.checkpoint["resume"]
        self.model.load_state_dict(resume.checkpoint["state"])
        self.batches.load_state_dict(saved["data"])
        self.fixed_z = saved["fixed_z"].to(self.device)
        best = saved["best"]
        self.best = (float(best["value"]), int(best["step"])) if best else None
        self.history = {
            k: [(int(s), v) for s, v in h.tolist()] for k, h in saved["history"].items()
        }
        self.step = self.checkpointed = resume.step
        notes = []
        seed = saved.get("scorer_seed")
        if self.scorer and seed is not None and seed != self.scorer.seed:
            notes.append(f"the scores use latent seed {self.scorer.seed}, the run used {seed}")
        return notes + rng.restore(saved["rng"], replica=self.replicas is not None)

    def state(self, step: int, scores: dict[str, float] | None = None) -> dict[str, Any]:
        """A checkpoint: the model, and everything the loop needs to continue exactly."""
        return {
            "format": checkpoint.CHECKPOINT_FORMAT,
            "step": step,
            "plan": self.plan.params(),
            "state": self.model.state_dict(),
            "scores": dict(scores or {}),
            "resume": {
                "rng": rng.capture(),
                "data": self.batches.state_dict(),
                "fixed_z": self.fixed_z.detach().cpu(),
                "best": {"value": self.best[0], "step": self.best[1]} if self.best else None,
                # (step, value) pairs as float64 tensors: compact for long runs, and
                # exact (steps below 2^53, values logged as Python floats).
                "history": {
                    k: torch.tensor(h, dtype=torch.float64) for k, h in self.history.items()
                },
                "scorer_seed": self.scorer.seed if self.scorer else None,
            },
        }

    # ---- the loop -----------------------------------------------------------------------
    def run(self, show_progress: bool, stop: StopSignals | None) -> RunResult:
        cfg = self.plan.train
        desc = f"{self.plan.architecture.name} on {self.plan.dataset.name}"
        last: dict[str, float] = {}
        batches = iter(self.batches)
        per_step = self.model.real_batches_per_step
        try:
            with TrainingProgress(
                self.steps, desc, enabled=show_progress and self.main, start=self.step
            ) as progress:
                mark, mark_step = time.perf_counter(), self.step
                for step in range(self.step + 1, self.steps + 1):
                    self.step_once(_real_batches(batches, per_step))
                    self.step = step
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
                        self.tracker.log_image(self._grid(), SAMPLES_KEY, step)
                    if self.scorer and (step % cfg.eval_every == 0 or step == self.steps):
                        self._evaluate(step)
                    if step == self.steps:
                        break  # the end: _finish writes the last checkpoint
                    signum, due = self._decide(step, stop)
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
        return RunResult(self.tracker.run_id, self.steps, self.history, last, self.folder.path)

    def _resume_hint(self) -> str:
        if self.checkpointed is None:
            return "no checkpoint was written yet: start the run again"
        return f"resumable from step {self.checkpointed}: ganbench resume {self.folder.path}"

    def _checkpoint_due(self, step: int) -> bool:
        cfg = self.plan.train
        if cfg.checkpoint_every:
            return step % cfg.checkpoint_every == 0
        return cfg.checkpoint_minutes > 0 and time.monotonic() >= self._next_checkpoint

    def _decide(self, step: int, stop: StopSignals | None) -> tuple[int | None, bool]:
        """(stop signal or None, write a checkpoint now) after ``step``: from this process
        alone, or, in a distributed run, what all ranks agreed at the logging step just
        passed (a step-count checkpoint needs no agreement)."""
        if self.replicas is None:
            return (stop.received if stop else None), self._checkpoint_due(step)
        signum, due = self._agreed
        self._agreed = (None, False)
        if self.plan.train.checkpoint_every:
            due = step % self.plan.train.checkpoint_every == 0
        return signum, due

    def _agree(self, stop: StopSignals | None) -> None:
        """All ranks learn whether any received a stop signal, and whether rank 0's clock
        says a checkpoint is due (one small all-reduce, at logging steps only)."""
        assert self.replicas is not None
        received = stop.received if stop else None
        due = self.main and not self.plan.train.checkpoint_every
        flags = torch.tensor(
            [float(received or 0), float(received is not None), float(due and self._timer())],
            device=self.replicas.device,
        )
        signal_sum, signalled, checkpoint_due = self.replicas.sum_(flags).tolist()
        signum = None
        if signalled:  # the signal this rank got, else any rank's (the sum of equal ones)
            signum = received or int(signal_sum / signalled)
        self._agreed = (signum, bool(checkpoint_due))

    def _timer(self) -> bool:
        cfg = self.plan.train
        return cfg.checkpoint_minutes > 0 and time.monotonic() >= self._next_checkpoint

    def _stop(self, signum: int, step: int) -> None:
        path = self._checkpoint(step)
        raise Preempted(
            signum,
            f"stopped by {signal_name(signum)} at step {step} of {self.steps}: checkpoint"
            f" {path} written, run {self.tracker.run_id} marked KILLED. Resume it with:"
            f" ganbench resume {self.folder.path}",
        )

    def _mark_resumable(self) -> None:
        if self.checkpointed is not None:
            self.tracker.set_tags(
                {
                    "ganbench.resumable": f"from step {self.checkpointed}:"
                    f" ganbench resume {self.tracker.run_id}"
                }
            )

    def _log(
        self, step: int, images_per_sec: float, stop: StopSignals | None = None
    ) -> dict[str, float]:
        """Log the statistics' means over the steps since the last logging step.

        The only host sync of the interval: all scalars come back in one transfer (in a
        distributed run, after one all-reduce that makes them means over the ranks)."""
        keys, stacked = self.statistics.take()
        if self.replicas is not None:
            stacked = self.replicas.sum_(stacked).div_(self.replicas.world)
            self._agree(stop)
        values = dict(zip(keys, stacked.tolist(), strict=True))
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
        if self.replicas is not None:
            # Samples come from G in eval mode, i.e. from its running statistics, which
            # each rank updated with its own share: all ranks take rank 0's (those its
            # checkpoint holds), so the scores are those of the checkpointed generator.
            self.replicas.sync_buffers(self.model.generator)
        result = self.scorer.score_shared(self.model, f"training step {step}", self.replicas)
        if result is None:
            return  # a rank other than 0: its share of the samples is on rank 0
        self.tracker.log_metrics(result.scores, step)
        self.tracker.set_tags(result.tags)
        how = self.folder.path / PROVENANCE_DIR / provenance_name(step)
        self.tracker.log_artifact(result.write_provenance(how, step=step), PROVENANCE_DIR)
        for k, v in result.scores.items():
            self.history.setdefault(k, []).append((step, v))
        fid_name = self.scorer.fid_name()
        fid = result.scores.get(fid_name) if fid_name else None
        if fid is not None and math.isfinite(fid) and (self.best is None or fid < self.best[0]):
            self.best = (fid, step)
            path = self.folder.write_best(self.state(step, {fid_name: fid}))
            self.tracker.log_artifact(path, "checkpoints")
            self.tracker.set_tags(
                {
                    "checkpoint.best": f"checkpoints/best.pt: step {step}, {fid_name} {fid:.6g}",
                    "checkpoint.best_step": str(step),
                }
            )

    def _checkpoint(self, step: int) -> Path:
        """Write the step's checkpoint into the run folder, then have it uploaded as the
        run's ``checkpoints/last.pt``. The journal is made durable first, so that what
        the checkpoint's steps logged survives anything that survives the checkpoint.

        In a distributed run rank 0 writes while the others wait; then every rank shows
        the sha256 of its weights, and replicas that differ stop the run (a broken
        gradient exchange must not train on silently)."""
        self._next_checkpoint = time.monotonic() + self.plan.train.checkpoint_minutes * 60
        path = self.folder.checkpoint_dir / "(rank 0's)"
        if self.main:
            self.tracker.flush()
            path = self.folder.write_checkpoint(self.state(step), step)
            self.checkpointed = step  # only once it is on disk whole (a full disk, ...)
            self.folder.beat(step)
            self.tracker.log_artifact(path, "checkpoints", name="last.pt")
            self.tracker.set_tags(
                {
                    "checkpoint.last": f"checkpoints/last.pt: step {step}",
                    "checkpoint.last_step": str(step),
                }
            )
        if self.replicas is not None:
            self._check_replicas(step)
        self.checkpointed = step
        return path

    def _check_replicas(self, step: int) -> None:
        """All ranks compare the sha256 of their weights (an all-gather: also the barrier
        that holds the others while rank 0 writes)."""
        assert self.replicas is not None
        nets = {"generator": self.model.generator, "discriminator": self.model.discriminator}
        digests = self.replicas.all_gather(weights_digest(nets))
        if len(set(digests)) > 1:
            differ = ", ".join(f"rank {r}: {d[:12]}" for r, d in enumerate(digests))
            raise GanbenchError(
                f"the replicas' weights differ at step {step} ({differ}): the gradient"
                " exchange is broken (a parameter used outside DDP, or a rank that skipped"
                " a step). Report it with the command that ran"
            )
        self.tracker.set_tags(
            {
                "distributed.weights_sha256": digests[0],
                "distributed.replicas": f"{self.replicas.world} ranks hold identical weights"
                f" at step {step}",
            }
        )

    def _finish(self) -> None:
        if not self.main:
            self._checkpoint(self.steps)  # rank 0 writes it; this rank checks its weights
            return
        grid = self._grid()
        self.tracker.log_image(grid, SAMPLES_KEY, self.steps)
        grid_path = self.folder.path / "samples_final.png"
        grid.save(grid_path)
        self.tracker.log_artifact(grid_path)
        curves = loss_curves(self.history, self.folder.path / "loss_curves.png")
        self.tracker.log_artifact(curves)
        self._checkpoint(self.steps)
        generator = checkpoint.save_atomic(
            {
                "format": checkpoint.GENERATOR_FORMAT,
                "architecture": self.plan.architecture.name,
                "config": dict(vars(self.plan.model)),
                "image_shape": [self.data.shape.channels, self.data.shape.resolution],
                "steps": self.steps,
                "state_dict": self.model.generator.state_dict(),
            },
            self.folder.path / "generator.pt",
        )
        self.tracker.log_artifact(generator)
        self.tracker.delete_tag("ganbench.resumable")
