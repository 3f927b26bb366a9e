"""The digits dataset: pixel values, labels and splits against scikit-learn's own data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from ganbench.data.loading import load_images
from ganbench.errors import UsageError
from ganbench.plugins.interfaces import DatasetRequest
from ganbench_plugins.digits import DigitsDataset


def _load(split: str, resolution: int, cache=None):
    return load_images(
        DigitsDataset(), DatasetRequest(split, resolution), cache or Path("/nonexistent")
    )


@pytest.fixture(scope="module")
def sk():
    return load_digits()


def test_native_resolution_is_sklearns_pixels_scaled(sk):
    data = _load("all", 8)
    assert data.images.shape == (1797, 1, 8, 8) and data.images.dtype == np.uint8
    expected = np.round(sk.images / 16 * 255).astype(np.uint8)
    np.testing.assert_array_equal(data.images[:, 0], expected)
    np.testing.assert_array_equal(data.labels, sk.target)


def test_upsampled_matches_an_independent_resize(sk):
    data = _load("all", 32)
    assert data.images.shape == (1797, 1, 32, 32)
    # Bilinear upsampling of the float image (PIL, in float) is an independent reference;
    # ganbench resizes the 8-bit image, so values may differ by rounding.
    for i in (0, 100, 1796):
        ref = Image.fromarray((sk.images[i] / 16).astype(np.float32), mode="F")
        ref = np.asarray(ref.resize((32, 32), Image.BILINEAR)) * 255
        assert np.abs(data.images[i, 0].astype(float) - ref).max() <= 2.0
    assert data.source.startswith("digits decoded in memory")
    assert data.images.max() == 255 and data.images.min() == 0


def test_splits_are_disjoint_stratified_and_cover_everything(sk):
    train, test = _load("train", 8), _load("test", 8)
    assert (len(train), len(test)) == (1437, 360)
    rows = {x.tobytes() for x in train.images} | {x.tobytes() for x in test.images}
    assert len(rows) == len({x.tobytes() for x in _load("all", 8).images})
    assert np.bincount(test.labels).min() >= 35  # about 36 per class
    # labels still belong to their images after the split
    all_images = np.round(sk.images / 16 * 255).astype(np.uint8)
    lookup = {all_images[i].tobytes(): sk.target[i] for i in range(len(all_images))}
    assert all(lookup[x[0].tobytes()] == y for x, y in zip(test.images, test.labels, strict=True))


def test_bad_requests():
    with pytest.raises(UsageError, match="no split 'val'"):
        _load("val", 32)
