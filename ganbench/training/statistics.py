"""A training step's statistics, summed on the device and read once per log interval.

Each step adds its scalars (losses, D's outputs) into one device buffer with one in-place
add, which a CUDA graph captures with the step; the runner reads the buffer back once
per log interval (the interval's only host sync) and logs each statistic's mean over the
interval's steps. A NaN or inf at any step of the interval shows in the mean, so a
divergence is caught at the next log step even when the last step's values look fine.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch


class StepStatistics:
    """Running sums of the steps' statistics since the last :meth:`take`."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        # float64 sums: the mean of an interval of float32 values loses nothing to the sum
        # (MPS has no float64 and keeps float32).
        self.dtype = torch.float32 if device.type == "mps" else torch.float64
        self.keys: tuple[str, ...] = ()
        self.sums: torch.Tensor | None = None
        #: Steps added since the last take (counted on the host: no sync).
        self.count = 0

    def add(self, stats: Mapping[str, torch.Tensor]) -> None:
        """Add one step's scalars (the keys of the first step fix the order; a step that
        returns other keys is a bug in its model)."""
        keys = tuple(stats)
        if self.sums is None:
            self.keys = keys
            self.sums = torch.zeros(len(keys), dtype=self.dtype, device=self.device)
        elif keys != self.keys:
            raise RuntimeError(f"a step returned statistics {keys}, earlier steps {self.keys}")
        values = torch.stack([stats[k].detach().to(self.dtype) for k in keys])
        self.sums.add_(values)

    def counted(self) -> None:
        """One more step went into the sums (for steps replayed from a captured graph,
        whose add ran on the device without this object's Python code)."""
        self.count += 1

    def take(self) -> tuple[tuple[str, ...], torch.Tensor]:
        """(keys, per-statistic means over the steps since the last take) as a device
        tensor; the sums start again from zero."""
        if self.sums is None or self.count == 0:
            raise RuntimeError("no step was added since the last read")
        means = self.sums / self.count
        self.sums.zero_()
        self.count = 0
        return self.keys, means
