"""Training a run: setting it up, and the record of what it was and what it became.

The model owns its training step; :mod:`ganbench.training.loop` owns the loop around it;
this module sets the loop up (seeds, speed settings, the model on the device, batches,
the params logged at the start or checked at a resume) and sees that a run always ends
with a status, and that it can stop at any step boundary and later continue from its
checkpoint exactly as if it had never stopped (same weights, same metrics, bit for bit
on the CPU).

In a distributed run (``replicas``) every rank runs the loop on its share of each global
batch; rank 0 alone logs, samples and writes checkpoints, and the others wait for it at
the checkpoint. Decisions that must be the same on every rank (stop on a signal, a
checkpoint on the clock) are agreed at the logging steps, with the all-reduce that
averages the logged values: one host sync per logging interval, as in one process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import random
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganbench.errors import GanbenchError, UsageError
from ganbench.metrics.session import Scorer
from ganbench.plugins.interfaces import GanModel, ImageArray
from ganbench.rundir.folder import RunFolder
from ganbench.rundir.heartbeat import Heartbeat
from ganbench.signals import Preempted, StopNow, StopSignals
from ganbench.tracking.tracker import Tracker
from ganbench.training.augment import diff_augment
from ganbench.training.checkpointing import Resume
from ganbench.training.data import DeviceBatches, fits_on_device, make_batches
from ganbench.training.distributed import Replicas
from ganbench.training.graphs import make_step, reported_fallback, speed_for
from ganbench.training.loop import TrainingLoop
from ganbench.training.plan import RunPlan
from ganbench.training.speed import resolve_speed

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
        # the images' own size, and the classes of the dataset's labels
        shape = dataclasses.replace(data.shape, num_classes=plan.shape.num_classes)
        model = plan.architecture.build(plan.model, shape)
        _check_batches_per_step(plan, model)
        model.augment = diff_augment(cfg.diffaugment)
        if scorer is not None:  # conditional scores of an unconditional model: now, not later
            scorer.check_model(model)
        speed = speed_for(speed, model, replicas is not None, cfg.lr_decay != "none")
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
            labels=model.num_classes > 0,
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
        loop = TrainingLoop(
            plan,
            model,
            data,
            tracker,
            device,
            folder,
            steps,
            scorer,
            batches,
            replicas=replicas,
            heartbeat=heartbeat,
        )
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
                    # what samples, scores and generator.pt come from
                    "ganbench.generator": "ema" if cfg.ema else "live",
                }
            )
        else:
            _check_same_data(resume, environment)
            tracker.set_tags(resume.tags(environment))
            for note in loop.checkpoints.restore(resume):
                say(f"note: {note}")
        final = loop.run(show_progress, stop)
        return RunResult(tracker.run_id, steps, loop.state.history, final, folder.path)


def _check_same_data(resume: Resume, environment: dict[str, Any]) -> None:
    """A resume continues the data order of the run only on the same images: a changed
    duplicates list (or one given or dropped), or another data_fraction subset, would
    silently draw other batches."""
    # (digest param, what it is, its absence, how to resume right); data.fraction_sha256 is
    # ganbench.training.subset.DIGEST_KEY
    checks = (
        ("data.duplicates_sha256", "a near-duplicates list", "none",
         "the list the run started with (the same --dedup setting and `ganbench data dedup` list)"),
        ("data.fraction_sha256", "a data_fraction subset", "none (the whole split)",
         "the run's own data_fraction, dataset files and ganbench version"),
    )  # fmt: skip
    for key, what, absent, fix in checks:
        before, now = resume.logged.get(key), environment.get(key)
        if before != now:
            raise UsageError(
                f"the run trained on {what} {before or absent}, this resume has"
                f" {now or absent}; resume with {fix}"
            )
