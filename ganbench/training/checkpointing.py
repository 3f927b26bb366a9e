"""A training run's checkpoints: what one holds, loading one back, and writing them.

Apart from the loop, which decides *when* (:mod:`ganbench.training.decisions`): this
module says *what* a checkpoint is (the model, the data cursor, the random generators and
the loop's own state, so that a resumed run continues exactly as if it had never
stopped) and where it goes (the run folder, then the run's ``checkpoints/`` artifacts).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ganbench.errors import GanbenchError
from ganbench.metrics.session import Scorer
from ganbench.plugins.interfaces import GanModel
from ganbench.rundir import checkpoint
from ganbench.rundir.folder import RunFolder, host
from ganbench.tracking.tracker import Tracker
from ganbench.training import rng
from ganbench.training.distributed import Replicas, weights_digest
from ganbench.training.ema import GeneratorEMA
from ganbench.training.plan import RunPlan


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


@dataclass
class LoopState:
    """What the loop carries from step to step, and a checkpoint keeps besides the model
    and the data cursor."""

    #: The latents of the sample grids (the same latents at every step).
    fixed_z: torch.Tensor
    #: The last completed step.
    step: int = 0
    #: (step, value) of every logged mean and score.
    history: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    #: (FID, step) of checkpoints/best.pt.
    best: tuple[float, int] | None = None
    #: Step of the newest checkpoint on disk (None before the first).
    checkpointed: int | None = None

    def record(self, values: dict[str, float], step: int) -> None:
        """Add the step's values to the history."""
        for k, v in values.items():
            self.history.setdefault(k, []).append((step, v))


class Checkpoints:
    """Captures, restores and writes the checkpoints of one training loop."""

    def __init__(
        self,
        plan: RunPlan,
        model: GanModel,
        batches: Any,
        folder: RunFolder,
        tracker: Tracker,
        device: torch.device,
        scorer: Scorer | None,
        state: LoopState,
        replicas: Replicas | None = None,
        ema: GeneratorEMA | None = None,
        class_names: tuple[str, ...] = (),
    ) -> None:
        self.plan, self.model, self.batches, self.folder = plan, model, batches, folder
        self.tracker, self.device, self.scorer, self.state = tracker, device, scorer, state
        self.replicas, self.ema = replicas, ema
        #: The dataset's names of a conditional model's labels 0..K-1 (its source's order);
        #: none where the source gives no name to every class.
        fits = len(class_names) == model.num_classes > 0
        self.class_names = tuple(class_names) if fits else ()

    @property
    def main(self) -> bool:
        """This process writes (always, unless it is a rank other than 0)."""
        return self.replicas is None or self.replicas.is_main

    def restore(self, resume: Resume) -> list[str]:
        """Load everything the next step depends on; the random generators go last, so
        that nothing between here and the first step draws from them."""
        saved = resume.checkpoint["resume"]
        self.model.load_state_dict(resume.checkpoint["state"])
        if self.ema is not None:
            if "ema" not in resume.checkpoint:
                raise GanbenchError(
                    f"{resume.path} holds no moving average of G and the run keeps one (ema);"
                    " resume with the settings the run started with"
                )
            self.ema.load_state_dict(resume.checkpoint["ema"])
        self.batches.load_state_dict(saved["data"])
        self.state.fixed_z = saved["fixed_z"].to(self.device)
        best = saved["best"]
        self.state.best = (float(best["value"]), int(best["step"])) if best else None
        self.state.history = {
            k: [(int(s), v) for s, v in h.tolist()] for k, h in saved["history"].items()
        }
        self.state.step = self.state.checkpointed = resume.step
        notes = []
        seed = saved.get("scorer_seed")
        if self.scorer and seed is not None and seed != self.scorer.seed:
            notes.append(f"the scores use latent seed {self.scorer.seed}, the run used {seed}")
        return notes + rng.restore(saved["rng"], replica=self.replicas is not None)

    def capture(self, step: int, scores: dict[str, float] | None = None) -> dict[str, Any]:
        """A checkpoint: the model, and everything the loop needs to continue exactly."""
        best = self.state.best
        return {
            "format": checkpoint.CHECKPOINT_FORMAT,
            "step": step,
            "plan": self.plan.params(),
            "state": self.model.state_dict(),
            # what label k means, for the zoo and `--class NAME` (a conditional model only)
            **({"class_names": list(self.class_names)} if self.class_names else {}),
            # G's moving average: what eval, the zoo and analyses sample from
            **({"ema": self.ema.state_dict()} if self.ema is not None else {}),
            "scores": dict(scores or {}),
            "resume": {
                "rng": rng.capture(),
                "data": self.batches.state_dict(),
                "fixed_z": self.state.fixed_z.detach().cpu(),
                "best": {"value": best[0], "step": best[1]} if best else None,
                # (step, value) pairs as float64 tensors: compact for long runs, and
                # exact (steps below 2^53, values logged as Python floats).
                "history": {
                    k: torch.tensor(h, dtype=torch.float64) for k, h in self.state.history.items()
                },
                "scorer_seed": self.scorer.seed if self.scorer else None,
            },
        }

    def write(self, step: int) -> Path:
        """Write the step's checkpoint into the run folder, then have it uploaded as the
        run's ``checkpoints/last.pt``. The journal is made durable first, so that what
        the checkpoint's steps logged survives anything that survives the checkpoint.

        In a distributed run rank 0 writes while the others wait; then every rank shows
        the sha256 of its weights, and replicas that differ stop the run (a broken
        gradient exchange must not train on silently)."""
        path = self.folder.checkpoint_dir / "(rank 0's)"
        if self.main:
            self.tracker.flush()
            path = self.folder.write_checkpoint(self.capture(step), step)
            self.state.checkpointed = step  # only once it is on disk whole (a full disk, ...)
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
        self.state.checkpointed = step
        return path

    def write_best(self, step: int, fid_name: str, fid: float) -> None:
        """Keep the weights of ``step``, the best FID so far, as ``checkpoints/best.pt``."""
        self.state.best = (fid, step)
        path = self.folder.write_best(self.capture(step, {fid_name: fid}))
        self.tracker.log_artifact(path, "checkpoints")
        self.tracker.set_tags(
            {
                "checkpoint.best": f"checkpoints/best.pt: step {step}, {fid_name} {fid:.6g}",
                "checkpoint.best_step": str(step),
            }
        )

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
