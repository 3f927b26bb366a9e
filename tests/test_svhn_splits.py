"""SVHN's "valid" and "train-minus-valid": the DCGAN authors' cut of train_32x32.mat.

The expected order is computed here the authors' way (Newmu/dcgan_code svhn/load.py:
``loadmat``, ``transpose(3, 2, 0, 1)``, ``y - 1``, then ``sklearn.utils.shuffle(trX, trY,
random_state=RandomState(42))``), not through the plugin's own permutation function.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io
from makers_torchvision import make_svhn
from sklearn.utils import shuffle

from ganbench.data.fetch import fetch_dataset
from ganbench.data.loading import load_images
from ganbench.errors import DatasetNotFoundError
from ganbench.plugins.interfaces import DatasetRequest
from ganbench_plugins import svhn as svhn_plugin
from ganbench_plugins.svhn import SvhnDataset
from ganbench_plugins.svhn.authors_valid import authors_permutation

N = 10_050  # just over the authors' 10,000: 50 images stay for train-minus-valid


@pytest.fixture(scope="module")
def train_file(tmp_path_factory) -> tuple[Path, np.ndarray, np.ndarray]:
    """A fake train_32x32.mat of N images; (root, images N x 32 x 32 x 3, labels)."""
    root = tmp_path_factory.mktemp("svhn")
    images, labels = make_svhn(root, "train", n=N, seed=3)
    return root, images, labels


def _authors_arrays(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """trX, trY after svhn/load.py:12-14 and :30 (N x C x H x W, labels y - 1)."""
    data = scipy.io.loadmat(root / "train_32x32.mat")
    tr_x = data["X"].transpose(3, 2, 0, 1)
    tr_y = data["y"].flatten() - 1
    return shuffle(tr_x, tr_y, random_state=np.random.RandomState(42))


def _open(split: str, root: Path):
    return SvhnDataset().open(DatasetRequest(split, 32, str(root)), root)


def _read_all(source) -> tuple[np.ndarray, np.ndarray]:
    pairs = [source.read(i) for i in range(len(source))]
    return np.stack([np.asarray(img) for img, _ in pairs]), np.array([y for _, y in pairs])


def test_index_permutation_is_the_authors_shuffle_of_the_arrays(train_file):
    root, images, _ = train_file
    order = shuffle(np.arange(N), random_state=np.random.RandomState(42))
    np.testing.assert_array_equal(authors_permutation(N), order)
    # the 2015 sklearn drew the same order: arange(n) shuffled in place by the RandomState
    np.testing.assert_array_equal(order, np.random.RandomState(42).permutation(N))
    tr_x, tr_y = _authors_arrays(root)
    data = scipy.io.loadmat(root / "train_32x32.mat")
    np.testing.assert_array_equal(tr_x, data["X"].transpose(3, 2, 0, 1)[order])
    np.testing.assert_array_equal(tr_y, data["y"].flatten()[order] - 1)
    np.testing.assert_array_equal(tr_x, images.transpose(0, 3, 1, 2)[order])


def test_permutation_of_the_real_file_size_is_pinned():
    # a guard against a change in numpy's legacy RandomState or sklearn's shuffle
    order = authors_permutation(73_257)
    assert sorted(order.tolist()) == list(range(73_257))
    np.testing.assert_array_equal(order, np.random.RandomState(42).permutation(73_257))
    assert order[:5].tolist() == [18393, 25194, 45083, 1413, 69044]
    assert (order[9_999], order[10_000], order[-1]) == (18948, 21133, 15795)


def test_valid_and_rest_are_the_authors_arrays(train_file):
    root, images, labels = train_file
    valid, rest = _open("valid", root), _open("train-minus-valid", root)
    assert (len(valid), len(rest)) == (10_000, N - 10_000)
    tr_x, tr_y = _authors_arrays(root)
    cut = 10_000
    for source, x, y in ((valid, tr_x[:cut], tr_y[:cut]), (rest, tr_x[cut:], tr_y[cut:])):
        got_images, got_labels = _read_all(source)
        np.testing.assert_array_equal(got_images.transpose(0, 3, 1, 2), x)
        # the authors' y - 1 (9 for the digit 0) is the digit itself, minus 1, mod 10
        np.testing.assert_array_equal(got_labels, (y + 1) % 10)
        assert source.files() == [root / "train_32x32.mat"]
        assert source.class_names() == tuple("0123456789")
    # disjoint, together all of train, labels following their images
    used = np.concatenate([valid.train_indices(), rest.train_indices()])
    assert len(set(valid.train_indices().tolist()) & set(rest.train_indices().tolist())) == 0
    assert sorted(used.tolist()) == list(range(N))
    got_images, got_labels = _read_all(valid)
    np.testing.assert_array_equal(got_images, images[valid.train_indices()])
    np.testing.assert_array_equal(got_labels, labels[valid.train_indices()])
    # the maker's image 0 is labelled 10 in the file: 0 wherever the permutation puts it
    assert scipy.io.loadmat(root / "train_32x32.mat")["y"][0, 0] == 10
    for source in (valid, rest):
        (where,) = np.flatnonzero(source.train_indices() == 0).tolist() or [None]
        if where is not None:
            assert source.read(where)[1] == 0
    with pytest.raises(IndexError):
        rest.read(N - 10_000)


def test_train_test_extra_unchanged(train_file):
    root, images, labels = train_file
    source = _open("train", root)
    assert len(source) == N
    image, label = source.read(7)
    np.testing.assert_array_equal(np.asarray(image), images[7])
    assert label == labels[7]
    assert SvhnDataset().splits == ("train", "test", "extra", "valid", "train-minus-valid")


@pytest.mark.parametrize("split", ["valid", "train-minus-valid"])
def test_too_small_train_file_is_refused(tmp_path, split):
    make_svhn(tmp_path, "train", n=5)
    with pytest.raises(DatasetNotFoundError) as exc:
        _open(split, tmp_path)
    message = str(exc.value)
    assert "\n" not in message
    assert "only 5 images" in message and "more than 10,000" in message
    assert str(tmp_path / "train_32x32.mat") in message


@pytest.mark.parametrize("split", ["valid", "train-minus-valid"])
def test_missing_train_file_named(tmp_path, split):
    make_svhn(tmp_path, "test")
    with pytest.raises(DatasetNotFoundError) as exc:
        _open(split, tmp_path)
    message = str(exc.value)
    assert "\n" not in message
    for part in ("train_32x32.mat", str(tmp_path), "ganbench data download svhn", "--data-root"):
        assert part in message


def test_remote_file_is_the_train_file():
    ds = SvhnDataset()
    train = ds.remote_files("train")
    assert ds.remote_files("valid") == ds.remote_files("train-minus-valid") == train
    assert train[0].filename == "train_32x32.mat"


def test_download_of_valid_fetches_the_train_file(tmp_path, monkeypatch, ganbench_run_cli):
    upstream = tmp_path / "upstream"
    make_svhn(upstream, "train", n=4)
    import hashlib

    md5 = hashlib.md5((upstream / "train_32x32.mat").read_bytes(), usedforsecurity=False)
    remote = ((upstream / "train_32x32.mat").as_uri(), "train_32x32.mat", md5.hexdigest())
    monkeypatch.setitem(svhn_plugin.SPLIT_LIST, "train", remote)
    root = tmp_path / "root"
    got = fetch_dataset(SvhnDataset(), root, ["valid", "train-minus-valid"], progress=False)
    assert got == [root / "train_32x32.mat"]
    (root / "train_32x32.mat").unlink()
    result = ganbench_run_cli(
        "data", "download", "svhn", "--split", "valid", "--no-progress", "--data-root", str(root)
    )
    assert result.exit_code == 0, result.output
    assert (root / "train_32x32.mat").read_bytes() == (upstream / "train_32x32.mat").read_bytes()


def test_prepared_caches_are_per_split(train_file, tmp_path):
    root, images, labels = train_file
    cache = tmp_path / "cache"
    said: list[str] = []
    order = shuffle(np.arange(N), random_state=np.random.RandomState(42))
    for split, indices in (("valid", order[:10_000]), ("train-minus-valid", order[10_000:])):
        data = load_images(
            SvhnDataset(),
            DatasetRequest(split, 32, str(root)),
            cache,
            progress=False,
            say=said.append,
        )
        assert len(data) == len(indices)
        np.testing.assert_array_equal(data.images, images[indices].transpose(0, 3, 1, 2))
        np.testing.assert_array_equal(data.labels, labels[indices])
        assert (cache / "prepared" / "svhn" / f"{split}-32px" / "manifest.json").is_file()
    assert said[0].startswith("prepared 10000 images of svhn valid at 32px")
    assert said[1].startswith("prepared 50 images of svhn train-minus-valid at 32px")
    again = load_images(
        SvhnDataset(),
        DatasetRequest("valid", 32, str(root)),
        cache,
        progress=False,
        say=said.append,
    )
    assert said[-1].startswith("using prepared 10000 images of svhn valid")
    np.testing.assert_array_equal(again.labels, labels[order[:10_000]])


def test_cli_lists_the_new_splits(train_file, tmp_path, ganbench_run_cli):
    root, _, _ = train_file
    listed = ganbench_run_cli("datasets")
    assert listed.exit_code == 0, listed.output
    assert any(line.startswith(" svhn") for line in listed.output.splitlines())
    info = ganbench_run_cli(
        "data", "info", "svhn", "--data-root", str(root), "--cache-dir", str(tmp_path / "c")
    )
    assert info.exit_code == 0, info.output
    out = info.output
    assert "splits train, test, extra, valid, train-minus-valid" in out
    assert f"train: {N} images in 1 file(s)" in out
    assert "valid: 10000 images in 1 file(s)" in out
    assert "train-minus-valid: 50 images in 1 file(s)" in out
    assert "test: not available" in out
