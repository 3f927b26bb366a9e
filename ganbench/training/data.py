"""Shuffled training batches from a uint8 image array, scaled to [-1, 1] on the device.

A split that fits (half the free GPU memory, or half the free RAM for the CPU) moves to
the device once as uint8 (4x smaller than float) and every batch is gathered and scaled
there: no step waits on decoding or host copies. A larger split (a prepared LSUN cache is
tens of GB) streams from its memory map, a background thread gathering the next batches.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from ganbench.errors import UsageError
from ganbench.interfaces import ImageArray


def _scale(batch: torch.Tensor, memory_format: torch.memory_format) -> torch.Tensor:
    """uint8 to [-1, 1] floats; the layout changes on the uint8 batch (4x fewer bytes to
    move than the floats), and ``float()`` keeps it."""
    return batch.contiguous(memory_format=memory_format).float().div_(127.5).sub_(1.0)


def device_budget(device: torch.device) -> int:
    """Bytes of data this device can hold without crowding out the model."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free // 2
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError):
        return 1 << 30


class _Batches:
    """What both kinds share: the batch size, epochs of a seeded permutation, the layout."""

    def __init__(
        self,
        data: ImageArray,
        batch_size: int,
        device: torch.device,
        seed: int,
        memory_format: torch.memory_format = torch.contiguous_format,
    ) -> None:
        check_batch_size(batch_size, len(data))
        self.batch_size = batch_size
        self.device = device
        self.memory_format = memory_format
        self.steps_per_epoch = len(data) // batch_size
        self._generator = torch.Generator().manual_seed(seed)
        self.images = self._hold(data.images)

    def _hold(self, images: np.ndarray) -> Any:
        """Where the images are kept: on the device, or left in their memory map."""
        raise NotImplementedError


class DeviceBatches(_Batches):
    """The whole split on the device; a fresh permutation each epoch, last partial dropped."""

    def _hold(self, images: np.ndarray) -> torch.Tensor:
        if not images.flags.writeable:  # a read-only memory map: read it into memory once
            images = np.array(images)
        return torch.from_numpy(np.ascontiguousarray(images)).to(self.device)

    def __iter__(self) -> Iterator[torch.Tensor]:
        while True:
            order = torch.randperm(len(self.images), generator=self._generator)
            order = order.to(self.images.device)
            for i in range(self.steps_per_epoch):
                index = order[i * self.batch_size : (i + 1) * self.batch_size]
                yield _scale(self.images[index], self.memory_format)


class StreamedBatches(_Batches):
    """Batches gathered from a memory-mapped split by a background thread (2 ahead)."""

    def _hold(self, images: np.ndarray) -> np.ndarray:
        return images

    def _host_batches(self, out: queue.Queue, stop: threading.Event) -> None:
        pin = self.device.type == "cuda"
        while not stop.is_set():
            order = torch.randperm(len(self.images), generator=self._generator).numpy()
            for i in range(self.steps_per_epoch):
                index = np.sort(order[i * self.batch_size : (i + 1) * self.batch_size])
                batch = torch.from_numpy(self.images[index])  # sorted: sequential page reads
                out.put(batch.pin_memory() if pin else batch)
                if stop.is_set():
                    return

    def __iter__(self) -> Iterator[torch.Tensor]:
        ready: queue.Queue = queue.Queue(maxsize=2)
        stop = threading.Event()
        worker = threading.Thread(target=self._host_batches, args=(ready, stop), daemon=True)
        worker.start()
        try:
            while True:
                batch = ready.get().to(self.device, non_blocking=True)
                yield _scale(batch, self.memory_format)
        finally:
            stop.set()


def check_batch_size(batch_size: int, n: int) -> None:
    if batch_size < 1:
        raise UsageError(f"batch size must be at least 1, not {batch_size}")
    if batch_size > n:
        raise UsageError(
            f"batch size {batch_size} is larger than the {n} images of the dataset;"
            f" pass --batch-size {n} or less"
        )


def make_batches(
    data: ImageArray,
    batch_size: int,
    device: torch.device,
    seed: int,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> DeviceBatches | StreamedBatches:
    """Device-resident batches when the split fits, streamed ones otherwise, in
    ``memory_format`` (channels_last for the fast path)."""
    kind = DeviceBatches if data.images.nbytes <= device_budget(device) else StreamedBatches
    return kind(data, batch_size, device, seed, memory_format)
