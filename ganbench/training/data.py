"""Shuffled training batches from a uint8 image array, kept on the training device.

The array moves to the device once as uint8 (4x smaller than float) and every batch is
indexed and scaled to [-1, 1] there, so a step never waits on host-side decoding or copies.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from ganbench.errors import UsageError
from ganbench.interfaces import ImageArray


class DeviceBatches:
    """An endless stream of batches: a fresh permutation each epoch, last partial dropped."""

    def __init__(self, data: ImageArray, batch_size: int, device: torch.device, seed: int) -> None:
        if batch_size < 1:
            raise UsageError(f"batch size must be at least 1, not {batch_size}")
        if batch_size > len(data):
            raise UsageError(
                f"batch size {batch_size} is larger than the {len(data)} images of the"
                f" dataset; pass --batch-size {len(data)} or less"
            )
        self.images = torch.as_tensor(data.images).to(device)
        self.batch_size = batch_size
        self.steps_per_epoch = len(data) // batch_size
        self._generator = torch.Generator().manual_seed(seed)

    def __iter__(self) -> Iterator[torch.Tensor]:
        while True:
            order = torch.randperm(len(self.images), generator=self._generator)
            order = order.to(self.images.device)
            for i in range(self.steps_per_epoch):
                index = order[i * self.batch_size : (i + 1) * self.batch_size]
                yield self.images[index].float().div_(127.5).sub_(1.0)
