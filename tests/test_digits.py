"""The digits dataset: pixel values, labels and splits against scikit-learn's own data."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from ganbench.errors import UsageError
from ganbench.interfaces import DatasetRequest
from ganbench_plugins.digits import DigitsDataset


@pytest.fixture(scope="module")
def sk():
    return load_digits()


def test_native_resolution_is_sklearns_pixels_scaled(sk):
    data = DigitsDataset().load(DatasetRequest("all", 8))
    assert data.images.shape == (1797, 1, 8, 8) and data.images.dtype == np.uint8
    expected = np.round(sk.images / 16 * 255).astype(np.uint8)
    np.testing.assert_array_equal(data.images[:, 0], expected)
    np.testing.assert_array_equal(data.labels, sk.target)


def test_upsampled_matches_an_independent_resize(sk):
    data = DigitsDataset().load(DatasetRequest("all", 32))
    assert data.images.shape == (1797, 1, 32, 32)
    # PIL's bilinear upsampling of the same float image is an independent reference.
    for i in (0, 100, 1796):
        ref = Image.fromarray((sk.images[i] / 16).astype(np.float32), mode="F")
        ref = np.asarray(ref.resize((32, 32), Image.BILINEAR)) * 255
        assert np.abs(data.images[i, 0].astype(float) - ref).max() <= 2.0
    assert data.images.max() == 255 and data.images.min() == 0


def test_splits_are_disjoint_stratified_and_cover_everything(sk):
    ds = DigitsDataset()
    train, test = ds.load(DatasetRequest("train", 8)), ds.load(DatasetRequest("test", 8))
    assert (len(train), len(test)) == (1437, 360)
    rows = {x.tobytes() for x in train.images} | {x.tobytes() for x in test.images}
    assert len(rows) == len({x.tobytes() for x in ds.load(DatasetRequest("all", 8)).images})
    assert np.bincount(test.labels).min() >= 35  # about 36 per class
    # labels still belong to their images after the split
    all_images = np.round(sk.images / 16 * 255).astype(np.uint8)
    lookup = {all_images[i].tobytes(): sk.target[i] for i in range(len(all_images))}
    assert all(lookup[x[0].tobytes()] == y for x, y in zip(test.images, test.labels, strict=True))


def test_bad_requests():
    with pytest.raises(UsageError, match="no split 'val'"):
        DigitsDataset().load(DatasetRequest("val", 32))
    with pytest.raises(UsageError, match="not 48"):
        DigitsDataset().load(DatasetRequest("train", 48))
