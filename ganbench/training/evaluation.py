"""Scoring the generator while it trains (``--eval-every``), and keeping its best weights.

Apart from the loop because a score is its own piece of work: samples from every rank,
the scores logged with their provenance file, and the best-FID weights kept as
``checkpoints/best.pt``.
"""

from __future__ import annotations

import math

from ganbench.metrics.scoring import PROVENANCE_DIR, provenance_name
from ganbench.metrics.session import Scorer
from ganbench.plugins.interfaces import GanModel
from ganbench.rundir.folder import RunFolder
from ganbench.tracking.tracker import Tracker
from ganbench.training.checkpointing import Checkpoints, LoopState
from ganbench.training.distributed import Replicas


class TrainingScores:
    """Scores the generator at the steps the loop asks for; logs and keeps the best."""

    def __init__(
        self,
        scorer: Scorer,
        model: GanModel,
        tracker: Tracker,
        folder: RunFolder,
        state: LoopState,
        checkpoints: Checkpoints,
        replicas: Replicas | None = None,
    ) -> None:
        self.scorer, self.model, self.tracker, self.folder = scorer, model, tracker, folder
        self.state, self.checkpoints, self.replicas = state, checkpoints, replicas

    def evaluate(self, step: int) -> None:
        """Score the generator now; keep the best-FID weights as checkpoints/best.pt.

        DCGAN often peaks and then degrades late in training, so the last checkpoint is
        not necessarily the best one; both are kept and tagged.
        """
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
        self.state.record(result.scores, step)
        fid_name = self.scorer.fid_name()
        fid = result.scores.get(fid_name) if fid_name else None
        best = self.state.best
        better = fid is not None and math.isfinite(fid) and (best is None or fid < best[0])
        if fid_name and fid is not None and better:
            self.checkpoints.write_best(step, fid_name, fid)
