"""When the training loop stops and when it writes a checkpoint.

In one process: a stop signal received, a checkpoint every N steps or on the clock. In a
distributed run these decisions must be the same on every rank, so they are agreed at the
logging steps, with one small all-reduce next to the one that averages the logged values
(one host sync per logging interval, as in one process).
"""

from __future__ import annotations

import time

import torch

from ganbench.signals import StopSignals
from ganbench.training.config import TrainConfig
from ganbench.training.distributed import Replicas


class Decisions:
    """Stop and checkpoint decisions after each step, from this process's signals and
    clock, or as all ranks agreed."""

    def __init__(self, train: TrainConfig, replicas: Replicas | None = None) -> None:
        self.train = train
        self.replicas = replicas
        self._next_checkpoint = time.monotonic() + train.checkpoint_minutes * 60
        #: (stop signal, checkpoint due) as agreed by all ranks at the last logging step.
        self._agreed: tuple[int | None, bool] = (None, False)

    @property
    def main(self) -> bool:
        """This process keeps the checkpoint clock (always, unless it is a rank other than 0)."""
        return self.replicas is None or self.replicas.is_main

    def restart_clock(self) -> None:
        """A checkpoint is being written: the next one on the clock is a full interval on."""
        self._next_checkpoint = time.monotonic() + self.train.checkpoint_minutes * 60

    def _checkpoint_due(self, step: int) -> bool:
        if self.train.checkpoint_every:
            return step % self.train.checkpoint_every == 0
        return self._timer()

    def decide(self, step: int, stop: StopSignals | None) -> tuple[int | None, bool]:
        """(stop signal or None, write a checkpoint now) after ``step``: from this process
        alone, or, in a distributed run, what all ranks agreed at the logging step just
        passed (a step-count checkpoint needs no agreement)."""
        if self.replicas is None:
            return (stop.received if stop else None), self._checkpoint_due(step)
        signum, due = self._agreed
        self._agreed = (None, False)
        if self.train.checkpoint_every:
            due = step % self.train.checkpoint_every == 0
        return signum, due

    def agree(self, stop: StopSignals | None) -> None:
        """All ranks learn whether any received a stop signal, and whether rank 0's clock
        says a checkpoint is due (one small all-reduce, at logging steps only)."""
        assert self.replicas is not None
        received = stop.received if stop else None
        due = self.main and not self.train.checkpoint_every
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
        return self.train.checkpoint_minutes > 0 and time.monotonic() >= self._next_checkpoint
