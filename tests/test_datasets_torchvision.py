"""CIFAR-10, SVHN, MNIST and Fashion-MNIST against tiny files in their real formats.

The real datasets cannot be downloaded here; the makers write files exactly as the
official ones are laid out, and where torchvision's own reader would accept them (its
integrity checks switched off) a test confirms it reads the same pixels as ours.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from makers_torchvision import (
    CIFAR10_CLASSES,
    CIFAR10_FOLDER,
    gzip_files,
    make_cifar10,
    make_cifar10_tarball,
    make_mnist,
    make_svhn,
    mnist_file_names,
    truncate,
    write_idx_labels,
)

from ganbench.data.fetch import fetch_dataset
from ganbench.data.loading import load_images
from ganbench.errors import DatasetNotFoundError, GanbenchError, UsageError
from ganbench.plugins.interfaces import DatasetRequest
from ganbench_plugins import cifar10 as cifar_plugin
from ganbench_plugins import svhn as svhn_plugin
from ganbench_plugins.cifar10 import Cifar10Dataset
from ganbench_plugins.mnist import FashionMnistDataset, MnistDataset
from ganbench_plugins.svhn import SvhnDataset

IDX = {"mnist": (MnistDataset, "MNIST"), "fashion-mnist": (FashionMnistDataset, "FashionMNIST")}


def _open(ds, split: str, root: Path):
    return ds.open(DatasetRequest(split, ds.default_resolution, str(root)), root)


def _read_all(source) -> tuple[np.ndarray, np.ndarray]:
    pairs = [source.read(i) for i in range(len(source))]
    return np.stack([np.asarray(img) for img, _ in pairs]), np.array([y for _, y in pairs])


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def _assert_not_found(exc: pytest.ExceptionInfo, name: str, *where: object) -> None:
    message = str(exc.value)
    for part in (*map(str, where), f"ganbench data download {name}", "--data-root"):
        assert part in message, f"{part!r} not in {message!r}"


# --- CIFAR-10 -------------------------------------------------------------------------


def test_cifar10_pixels_labels_classes_and_files(tmp_path):
    arrays = make_cifar10(tmp_path, per_batch=(2, 1, 3, 1, 2), test=4)
    ds = Cifar10Dataset()
    for split, n in (("train", 9), ("test", 4)):
        source = _open(ds, split, tmp_path)
        assert len(source) == n
        image, label = source.read(0)
        assert image.mode == "RGB" and image.size == (32, 32) and isinstance(label, int)
        images, labels = _read_all(source)
        np.testing.assert_array_equal(images, arrays[split][0])  # batches in order 1..5
        np.testing.assert_array_equal(labels, arrays[split][1])
        assert source.class_names() == CIFAR10_CLASSES
    folder = tmp_path / CIFAR10_FOLDER
    assert _open(ds, "test", tmp_path).files() == [folder / "test_batch", folder / "batches.meta"]
    assert [p.name for p in _open(ds, "train", tmp_path).files()] == [
        *(f"data_batch_{i}" for i in range(1, 6)),
        "batches.meta",
    ]


def test_cifar10_maker_is_what_torchvision_reads(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as tv_cifar

    arrays = make_cifar10(tmp_path)
    # torchvision md5-checks the official files; with that off it must read our files
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)
    tv = tv_cifar.CIFAR10(str(tmp_path), train=True, download=False)
    np.testing.assert_array_equal(tv.data, arrays["train"][0])
    assert tv.targets == arrays["train"][1].tolist()
    assert tuple(tv.classes) == CIFAR10_CLASSES
    images, _ = _read_all(_open(Cifar10Dataset(), "train", tmp_path))
    np.testing.assert_array_equal(images, tv.data)


def test_cifar10_accepts_batches_pickled_with_bytes_keys(tmp_path):
    arrays = make_cifar10(tmp_path, bytes_keys=True)
    source = _open(Cifar10Dataset(), "test", tmp_path)
    images, labels = _read_all(source)
    np.testing.assert_array_equal(images, arrays["test"][0])
    np.testing.assert_array_equal(labels, arrays["test"][1])
    assert source.class_names() == CIFAR10_CLASSES


def test_cifar10_unpack_extracts_the_tarball(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    arrays = make_cifar10_tarball(root / "cifar-10-python.tar.gz", per_batch=1, test=2)
    Cifar10Dataset().unpack([root / "cifar-10-python.tar.gz"], root)
    assert (root / CIFAR10_FOLDER / "data_batch_5").is_file()
    images, labels = _read_all(_open(Cifar10Dataset(), "test", root))
    np.testing.assert_array_equal(images, arrays["test"][0])
    np.testing.assert_array_equal(labels, arrays["test"][1])


def test_cifar10_download_and_unpack_through_the_core(tmp_path, monkeypatch):
    tarball = tmp_path / "upstream" / "cifar-10-python.tar.gz"
    tarball.parent.mkdir()
    arrays = make_cifar10_tarball(tarball, per_batch=1, test=2)
    monkeypatch.setattr(cifar_plugin, "URL", tarball.as_uri())
    monkeypatch.setattr(cifar_plugin, "ARCHIVE_MD5", _md5(tarball))
    root = tmp_path / "cache" / "datasets" / "cifar10"
    got = fetch_dataset(Cifar10Dataset(), root, ["train", "test"], progress=False)
    assert got == [root / "cifar-10-python.tar.gz"]  # one archive for both splits
    assert len(_open(Cifar10Dataset(), "train", root)) == 5
    data = load_images(
        Cifar10Dataset(), DatasetRequest("test", 32, str(root)), tmp_path / "cache", say=str
    )
    np.testing.assert_array_equal(data.images, arrays["test"][0].transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(data.labels, arrays["test"][1])


def test_cifar10_unpack_of_a_broken_archive_names_it(tmp_path):
    archive = tmp_path / "cifar-10-python.tar.gz"
    make_cifar10_tarball(archive)
    truncate(archive, 0.5)
    with pytest.raises(GanbenchError, match=r"cannot extract .*cifar-10-python\.tar\.gz"):
        Cifar10Dataset().unpack([archive], tmp_path)


def test_cifar10_missing_files(tmp_path):
    ds = Cifar10Dataset()
    with pytest.raises(DatasetNotFoundError) as exc:
        _open(ds, "train", tmp_path)
    _assert_not_found(exc, "cifar10", tmp_path, CIFAR10_FOLDER, "data_batch_1", "batches.meta")
    make_cifar10(tmp_path)
    (tmp_path / CIFAR10_FOLDER / "data_batch_3").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"missing data_batch_3\."):
        _open(ds, "train", tmp_path)
    assert len(_open(ds, "test", tmp_path)) == 3  # the test split does not need it


@pytest.mark.parametrize("name", ["data_batch_2", "test_batch", "batches.meta"])
def test_cifar10_truncated_batch_names_the_file(tmp_path, name):
    make_cifar10(tmp_path)
    path = truncate(tmp_path / CIFAR10_FOLDER / name, 0.6)
    split = "train" if name == "data_batch_2" else "test"
    with pytest.raises(DatasetNotFoundError, match="is truncated") as exc:
        _open(Cifar10Dataset(), split, tmp_path)
    assert str(path) in str(exc.value)


def test_cifar10_batch_that_is_not_a_cifar_pickle(tmp_path):
    import pickle

    make_cifar10(tmp_path)
    path = tmp_path / CIFAR10_FOLDER / "test_batch"
    path.write_bytes(pickle.dumps({"data": np.zeros((2, 100), np.uint8), "labels": [1, 2]}))
    with pytest.raises(DatasetNotFoundError, match=r"not uint8 N x 3072") as exc:
        _open(Cifar10Dataset(), "test", tmp_path)
    assert str(path) in str(exc.value)


# --- SVHN -----------------------------------------------------------------------------


def test_svhn_pixels_labels_and_splits(tmp_path):
    arrays = {
        s: make_svhn(tmp_path, s, n=n, seed=i)
        for i, (s, n) in enumerate((("train", 5), ("test", 3), ("extra", 7)))
    }
    y = scipy.io.loadmat(tmp_path / "train_32x32.mat")["y"]
    assert 10 in y and 0 not in y  # the file really labels zeros as 10
    ds = SvhnDataset()
    for split, (expected, labels) in arrays.items():
        source = _open(ds, split, tmp_path)
        assert len(source) == len(expected)
        image, label = source.read(0)
        assert image.mode == "RGB" and image.size == (32, 32) and label == 0
        got_images, got_labels = _read_all(source)
        np.testing.assert_array_equal(got_images, expected)
        np.testing.assert_array_equal(got_labels, labels)
        assert source.files() == [tmp_path / f"{split}_32x32.mat"]
        assert source.class_names() == tuple("0123456789")


def test_svhn_maker_is_what_torchvision_reads(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    images, labels = make_svhn(tmp_path, "test", n=4)
    monkeypatch.setattr(tvd.SVHN, "_check_integrity", lambda self: True)
    tv = tvd.SVHN(str(tmp_path), split="test", download=False)
    for i in range(4):
        image, label = tv[i]
        np.testing.assert_array_equal(np.asarray(image), images[i])
        assert label == labels[i]


def test_svhn_missing_file(tmp_path):
    make_svhn(tmp_path, "train")
    with pytest.raises(DatasetNotFoundError) as exc:
        _open(SvhnDataset(), "extra", tmp_path)
    _assert_not_found(exc, "svhn", tmp_path, "extra_32x32.mat")


def test_svhn_truncated_file_names_it(tmp_path):
    make_svhn(tmp_path, "train", n=6)
    path = truncate(tmp_path / "train_32x32.mat", 0.7)
    with pytest.raises(DatasetNotFoundError, match="is truncated") as exc:
        _open(SvhnDataset(), "train", tmp_path)
    assert str(path) in str(exc.value)


def test_svhn_truncated_data_found_on_first_read(tmp_path):
    # with y stored before X the header lists both, so the cut shows only when X is read
    n = 4
    path = tmp_path / "test_32x32.mat"
    x = np.zeros((32, 32, 3, n), np.uint8)
    scipy.io.savemat(path, {"y": np.ones((n, 1), np.uint8), "X": x})
    truncate(path, 0.8)
    source = _open(SvhnDataset(), "test", tmp_path)
    assert len(source) == n  # counted from the header, nothing loaded yet
    with pytest.raises(DatasetNotFoundError, match="is truncated") as exc:
        source.read(0)
    assert str(path) in str(exc.value)


def test_svhn_mat_without_svhn_variables(tmp_path):
    scipy.io.savemat(tmp_path / "train_32x32.mat", {"images": np.zeros((2, 2), np.uint8)})
    with pytest.raises(DatasetNotFoundError, match=r"lack 'X'/'y'"):
        _open(SvhnDataset(), "train", tmp_path)


# --- MNIST and Fashion-MNIST ----------------------------------------------------------


@pytest.mark.parametrize("name", sorted(IDX))
def test_idx_pixels_labels_and_files(tmp_path, name):
    cls, folder = IDX[name]
    arrays = make_mnist(tmp_path, folder=folder, train=5, test=3)
    ds = cls()
    for split, (expected, labels) in arrays.items():
        source = _open(ds, split, tmp_path)
        assert len(source) == len(expected)
        image, label = source.read(1)
        assert image.mode == "L" and image.size == (28, 28) and isinstance(label, int)
        got_images, got_labels = _read_all(source)
        np.testing.assert_array_equal(got_images, expected)
        np.testing.assert_array_equal(got_labels, labels)
        raw = tmp_path / folder / "raw"
        assert source.files() == [raw / n for n in mnist_file_names(split)]
    names = _open(ds, "test", tmp_path).class_names()
    if name == "mnist":
        assert names == tuple("0123456789")
    else:
        assert names[0] == "T-shirt/top" and names[9] == "Ankle boot" and len(names) == 10


def test_mnist_and_fashion_share_a_torchvision_root(tmp_path):
    mnist = make_mnist(tmp_path, folder="MNIST", seed=1)
    fashion = make_mnist(tmp_path, folder="FashionMNIST", seed=2)
    got_m, _ = _read_all(_open(MnistDataset(), "train", tmp_path))
    got_f, _ = _read_all(_open(FashionMnistDataset(), "train", tmp_path))
    np.testing.assert_array_equal(got_m, mnist["train"][0])
    np.testing.assert_array_equal(got_f, fashion["train"][0])
    names = {
        r.filename
        for ds in (MnistDataset(), FashionMnistDataset())
        for r in ds.remote_files("train")
    }
    assert len(names) == 8  # the downloads cannot overwrite each other either


@pytest.mark.parametrize("name", sorted(IDX))
def test_idx_unpack_gunzips_into_torchvisions_raw_folder(tmp_path, name):
    cls, folder = IDX[name]
    ds = cls()
    arrays = make_mnist(tmp_path / "src", folder=folder)
    raw_src = tmp_path / "src" / folder / "raw"
    root = tmp_path / "root"
    gz = gzip_files(sorted(raw_src.iterdir()), root, prefix=f"{folder}-")
    assert sorted(p.name for p in gz) == sorted(r.filename for r in ds.remote_files("test"))
    ds.unpack(gz, root)
    assert not list((root / folder / "raw").glob("*.part"))
    np.testing.assert_array_equal(_read_all(_open(ds, "test", root))[0], arrays["test"][0])


@pytest.mark.parametrize("name", sorted(IDX))
def test_idx_download_and_unpack_through_the_core(tmp_path, monkeypatch, name):
    cls, folder = IDX[name]
    arrays = make_mnist(tmp_path / "src", folder=folder, train=3, test=2)
    upstream = tmp_path / "upstream"
    gz = gzip_files(sorted((tmp_path / "src" / folder / "raw").iterdir()), upstream)
    resources = tuple((p.name, _md5(p)) for p in gz)
    monkeypatch.setattr(cls, "mirror", upstream.as_uri() + "/")
    monkeypatch.setattr(cls, "resources", resources)
    root = tmp_path / "cache" / "datasets" / name
    got = fetch_dataset(cls(), root, ["train"], progress=False)
    assert len(got) == 4 and all(p.parent == root for p in got)
    images, labels = _read_all(_open(cls(), "train", root))
    np.testing.assert_array_equal(images, arrays["train"][0])
    np.testing.assert_array_equal(labels, arrays["train"][1])


def test_idx_unpack_of_a_broken_gzip_names_it(tmp_path):
    bad = tmp_path / "MNIST-train-images-idx3-ubyte.gz"
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(GanbenchError, match=r"cannot decompress .*MNIST-train-images"):
        MnistDataset().unpack([bad], tmp_path)
    assert not list((tmp_path / "MNIST" / "raw").iterdir())


@pytest.mark.parametrize("name", sorted(IDX))
def test_idx_missing_files(tmp_path, name):
    cls, folder = IDX[name]
    with pytest.raises(DatasetNotFoundError) as exc:
        _open(cls(), "train", tmp_path)
    _assert_not_found(exc, name, tmp_path / folder / "raw", "train-images-idx3-ubyte")
    make_mnist(tmp_path, folder=folder)
    (tmp_path / folder / "raw" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"missing t10k-labels-idx1-ubyte\."):
        _open(cls(), "test", tmp_path)
    # torchvision's reader wants both splits' files, so the train split says so too
    with pytest.raises(DatasetNotFoundError, match=r"missing t10k-labels-idx1-ubyte\."):
        _open(cls(), "train", tmp_path)


@pytest.mark.parametrize("keep", [0.5, 0.999, 0.001])
def test_idx_truncated_file_names_it(tmp_path, keep):
    make_mnist(tmp_path)
    path = truncate(tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte", keep)
    with pytest.raises(DatasetNotFoundError, match="is truncated") as exc:
        _open(MnistDataset(), "train", tmp_path)
    assert str(path) in str(exc.value)


def test_idx_wrong_kind_of_file_and_mismatched_counts(tmp_path):
    make_mnist(tmp_path, train=4)
    raw = tmp_path / "MNIST" / "raw"
    write_idx_labels(raw / "train-images-idx3-ubyte", np.arange(4))  # labels as images
    with pytest.raises(DatasetNotFoundError, match="magic number 2049") as exc:
        _open(MnistDataset(), "train", tmp_path)
    assert str(raw / "train-images-idx3-ubyte") in str(exc.value)
    make_mnist(tmp_path, train=4)
    write_idx_labels(raw / "train-labels-idx1-ubyte", np.arange(3))
    with pytest.raises(DatasetNotFoundError, match="do not belong together"):
        _open(MnistDataset(), "train", tmp_path)


# --- all four -------------------------------------------------------------------------

ALL = {
    "cifar10": (Cifar10Dataset, 3, ("train", "test")),
    "svhn": (SvhnDataset, 3, ("train", "test", "extra", "valid", "train-minus-valid")),
    "mnist": (MnistDataset, 1, ("train", "test")),
    "fashion-mnist": (FashionMnistDataset, 1, ("train", "test")),
}
CITES = {
    "cifar10": ("Krizhevsky", "2009", "Tiny Images"),
    "svhn": ("Netzer", "2011", "Reading Digits in Natural Images"),
    "mnist": ("LeCun", "1998", "Gradient-based learning"),
    "fashion-mnist": ("Xiao", "2017", "arXiv:1708.07747"),
}
LICENSES = {
    "cifar10": "cite",
    "svhn": "non-commercial",
    "mnist": "CC BY-SA 3.0",
    "fashion-mnist": "MIT",
}


@pytest.mark.parametrize("name", sorted(ALL))
def test_metadata(name):
    cls, channels, splits = ALL[name]
    ds = cls()
    assert ds.name == name
    assert (ds.channels, ds.num_classes, ds.splits) == (channels, 10, splits)
    assert ds.default_resolution == 32 and ds.resolutions == (16, 32, 64)
    assert ds.cacheable and not ds.bundled and ds.categories == ()
    assert all(part in ds.citation for part in CITES[name])
    assert LICENSES[name] in ds.license
    assert f"ganbench data download {name}" in ds.obtain and "http" in ds.obtain
    for split in splits:
        remotes = ds.remote_files(split)
        assert remotes and all(r.md5 and r.url.startswith("http") for r in remotes)


@pytest.mark.parametrize("name", sorted(ALL))
def test_unknown_split(tmp_path, name):
    ds = ALL[name][0]()
    with pytest.raises(UsageError, match=f"{name} has no split 'val'; use one of") as exc:
        _open(ds, "val", tmp_path)
    assert ", ".join(ds.splits) in str(exc.value)
    with pytest.raises(UsageError, match="no split 'val'"):
        ds.remote_files("val")


def test_registered_through_the_entry_points(ganbench_registries):
    datasets = ganbench_registries.datasets
    for name, (cls, _, _) in ALL.items():
        assert type(datasets.get(name)) is cls
    assert datasets.plugin_of("cifar10") == "cifar10"
    assert datasets.plugin_of("svhn") == "svhn"
    assert datasets.plugin_of("mnist") == datasets.plugin_of("fashion-mnist") == "mnist"


def test_urls_and_checksums_are_torchvisions():
    import torchvision.datasets as tvd

    ds = Cifar10Dataset()
    assert ds.remote_files("train") == ds.remote_files("test")
    (remote,) = ds.remote_files("train")
    assert (remote.url, remote.filename, remote.md5) == (
        tvd.CIFAR10.url,
        tvd.CIFAR10.filename,
        tvd.CIFAR10.tgz_md5,
    )
    assert tvd.CIFAR10.base_folder == cifar_plugin.BASE_FOLDER
    assert cifar_plugin.SPLIT_FILES["train"] == tuple(n for n, _ in tvd.CIFAR10.train_list)
    assert cifar_plugin.SPLIT_FILES["test"] == tuple(n for n, _ in tvd.CIFAR10.test_list)
    assert tvd.CIFAR10.meta["filename"] == cifar_plugin.META_FILE
    for split in ("train", "test", "extra"):
        (remote,) = SvhnDataset().remote_files(split)
        assert [remote.url, remote.filename, remote.md5] == tvd.SVHN.split_list[split]
        assert svhn_plugin.SPLIT_LIST[split] == tuple(tvd.SVHN.split_list[split])
    for cls, tv in ((MnistDataset, tvd.MNIST), (FashionMnistDataset, tvd.FashionMNIST)):
        remotes = cls().remote_files("train")
        assert [(r.url, r.md5) for r in remotes] == [
            (tv.mirrors[0] + name, md5) for name, md5 in tv.resources
        ]
        assert cls.torchvision_class == tv.__name__
    assert FashionMnistDataset.classes == tuple(tvd.FashionMNIST.classes)


def test_importing_the_plugins_imports_no_heavy_library():
    code = (
        "import sys, ganbench_plugins.cifar10, ganbench_plugins.svhn, ganbench_plugins.mnist;"
        "print(sorted({'torch', 'torchvision', 'scipy', 'numpy', 'PIL'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
