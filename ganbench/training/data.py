"""Shuffled training batches from a uint8 image array, scaled to [-1, 1] on the device.

A split that fits (half the free GPU memory, or half the free RAM for the CPU) moves to
the device once as uint8 (4x smaller than float) and every batch is gathered and scaled
there: no step waits on decoding or host copies. A larger split (a prepared LSUN cache is
tens of GB) streams from its memory map, a background thread gathering the next batches.

For a class-conditional model (``labels=True``) each batch comes with its images' classes
(int64, on the device), gathered with the same indices.

Both keep a cursor (epoch, the order generator's state before that epoch's permutation,
position in it) that a checkpoint saves, so a resumed run draws exactly the batches the
interrupted one would have.

In a distributed run the batch size is the global batch: every rank draws the same
permutation (same seed, reshuffled per epoch) and takes its own slice of each global
batch, so the ranks' shares are disjoint and together are what one process would train
on; the cursor is the same on every rank and does not depend on the world size.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from ganbench.errors import UsageError
from ganbench.plugins.interfaces import ImageArray
from ganbench.training.devices import available_memory


def _scale(batch: torch.Tensor, memory_format: torch.memory_format) -> torch.Tensor:
    """uint8 to [-1, 1] floats; the layout changes on the uint8 batch (4x fewer bytes to
    move than the floats), and ``float()`` keeps it."""
    return batch.contiguous(memory_format=memory_format).float().div_(127.5).sub_(1.0)


def device_budget(device: torch.device) -> int:
    """Bytes of data this device can hold without crowding out the model."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free // 2
    available = available_memory()
    return available // 2 if available is not None else 1 << 30


class _Batches:
    """What both kinds share: the batch size, epochs of a seeded permutation, the layout."""

    def __init__(
        self,
        data: ImageArray,
        batch_size: int,
        device: torch.device,
        seed: int,
        memory_format: torch.memory_format = torch.contiguous_format,
        shard: tuple[int, int] = (0, 1),
        labels: bool = False,
    ) -> None:
        check_batch_size(batch_size, len(data))
        if labels and data.labels is None:
            raise UsageError(
                "a class-conditional model trains on labelled images and this split has no"
                " labels; train it unconditionally (conditional=none)"
            )
        if labels and len(data.labels) and int(np.min(data.labels)) < 0:
            raise UsageError(
                "a class-conditional model trains on labelled images and some images of this"
                " split have no class (label -1); train it unconditionally (conditional=none)"
            )
        rank, world = shard
        #: The global batch; this rank trains on ``local`` images of it, from ``offset``.
        self.batch_size = batch_size
        self.local = batch_size // world
        self.offset = rank * self.local
        self.device = device
        self.memory_format = memory_format
        self.steps_per_epoch = len(data) // batch_size
        self._generator = torch.Generator().manual_seed(seed)
        #: (epoch, generator state before its permutation, position of the next batch)
        self._cursor: tuple[int, torch.Tensor, int] = (0, self._generator.get_state(), 0)
        self.images = self._hold(data.images)
        #: The images' classes (int64, where the images are kept) when batches carry them.
        self.labels = self._hold_labels(data.labels) if labels else None

    def _hold(self, images: np.ndarray) -> Any:
        """Where the images are kept: on the device, or left in their memory map."""
        raise NotImplementedError

    def _hold_labels(self, labels: np.ndarray) -> Any:
        return np.asarray(labels, dtype=np.int64)

    def state_dict(self) -> dict[str, Any]:
        """Where the next batch comes from (saved in checkpoints)."""
        epoch, rng, position = self._cursor
        return {"epoch": epoch, "rng": rng.clone(), "position": position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a saved cursor; call before iterating."""
        self._cursor = (int(state["epoch"]), state["rng"], int(state["position"]))

    def _epochs(self) -> Iterator[tuple[int, torch.Tensor, torch.Tensor, int]]:
        """(epoch, generator state, permutation, first position) from the cursor on: a
        fresh permutation per epoch from one running generator."""
        epoch, rng, start = self._cursor
        self._generator.set_state(rng)
        while True:
            rng = self._generator.get_state()
            yield epoch, rng, torch.randperm(len(self.images), generator=self._generator), start
            epoch, start = epoch + 1, 0


class DeviceBatches(_Batches):
    """The whole split on the device; a fresh permutation each epoch, last partial dropped."""

    def _hold(self, images: np.ndarray) -> torch.Tensor:
        if not images.flags.writeable:  # a read-only memory map: read it into memory once
            images = np.array(images)
        return torch.from_numpy(np.ascontiguousarray(images)).to(self.device)

    def _hold_labels(self, labels: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(self.device)

    def __iter__(self) -> Iterator[Any]:
        for epoch, rng, order, start in self._epochs():
            order = order.to(self.images.device)
            for i in range(start, self.steps_per_epoch):
                first = i * self.batch_size + self.offset
                index = order[first : first + self.local]
                self._cursor = (epoch, rng, i + 1)
                batch = _scale(self.images[index], self.memory_format)
                yield batch if self.labels is None else (batch, self.labels[index])


class StreamedBatches(_Batches):
    """Batches gathered from a memory-mapped split by a background thread (2 ahead)."""

    def _hold(self, images: np.ndarray) -> np.ndarray:
        return images

    def _host_batches(self, out: queue.Queue, stop: threading.Event) -> None:
        pin = self.device.type == "cuda"
        for epoch, rng, order, start in self._epochs():
            order = order.numpy()
            for i in range(start, self.steps_per_epoch):
                first = i * self.batch_size + self.offset
                index = np.sort(order[first : first + self.local])
                batch = torch.from_numpy(self.images[index])  # sorted: sequential page reads
                labels = None if self.labels is None else torch.from_numpy(self.labels[index])
                out.put((batch.pin_memory() if pin else batch, labels, (epoch, rng, i + 1)))
                if stop.is_set():
                    return

    def __iter__(self) -> Iterator[Any]:
        ready: queue.Queue = queue.Queue(maxsize=2)
        stop = threading.Event()
        worker = threading.Thread(target=self._host_batches, args=(ready, stop), daemon=True)
        worker.start()
        try:
            while True:
                batch, labels, cursor = ready.get()
                self._cursor = cursor  # the thread runs ahead; the cursor is what was used
                images = _scale(batch.to(self.device, non_blocking=True), self.memory_format)
                yield images if labels is None else (images, labels.to(self.device))
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
    shard: tuple[int, int] = (0, 1),
    on_device: bool | None = None,
    labels: bool = False,
) -> DeviceBatches | StreamedBatches:
    """Device-resident batches when the split fits (``on_device``: decided by the caller,
    e.g. for all ranks of a group alike), streamed ones otherwise, in ``memory_format``
    (channels_last for the fast path); ``shard`` = (rank, world size) takes this rank's
    share of each global batch; ``labels``: yield (images, classes) pairs."""
    if on_device is None:
        on_device = fits_on_device(data, device)
    kind = DeviceBatches if on_device else StreamedBatches
    return kind(data, batch_size, device, seed, memory_format, shard, labels)


def fits_on_device(data: ImageArray, device: torch.device) -> bool:
    return data.images.nbytes <= device_budget(device)
