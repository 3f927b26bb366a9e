"""Training batches: device-resident and streamed from a memory map give the same data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ganbench.errors import UsageError
from ganbench.plugins.interfaces import ImageArray
from ganbench.training.data import DeviceBatches, StreamedBatches, make_batches


@pytest.fixture
def memmapped(tmp_path):
    images = np.lib.format.open_memmap(tmp_path / "x.npy", "w+", np.uint8, (50, 3, 4, 4))
    images[:] = np.arange(50, dtype=np.uint8)[:, None, None, None] * 5
    images.flush()
    return ImageArray(np.load(tmp_path / "x.npy", mmap_mode="r"))


def _ids(batch: torch.Tensor) -> list[int]:
    """Image index from its constant pixel value (scaled back from [-1, 1])."""
    return sorted(round(((v + 1) * 127.5).item() / 5) for v in batch[:, 0, 0, 0])


def test_streamed_and_device_batches_are_the_same_batches(memmapped):
    device = DeviceBatches(memmapped, 8, torch.device("cpu"), seed=5)
    streamed = StreamedBatches(memmapped, 8, torch.device("cpu"), seed=5)
    assert device.steps_per_epoch == streamed.steps_per_epoch == 6
    a, b = iter(device), iter(streamed)
    epoch = []
    for _ in range(12):  # two epochs
        x, y = next(a), next(b)
        assert x.shape == (8, 3, 4, 4) and x.dtype == torch.float32
        assert x.min() >= -1 and x.max() <= 1
        assert _ids(x) == _ids(y)
        epoch += _ids(x)
    first, second = epoch[:48], epoch[48:]
    assert len(set(first)) == 48 and len(set(second)) == 48  # no repeats within an epoch
    assert first != second


def test_small_data_goes_to_the_device(memmapped):
    assert isinstance(make_batches(memmapped, 8, torch.device("cpu"), 0), DeviceBatches)


def test_batch_larger_than_the_dataset(memmapped):
    with pytest.raises(UsageError, match="batch size 64 is larger than the 50 images"):
        make_batches(memmapped, 64, torch.device("cpu"), 0)
