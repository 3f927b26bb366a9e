"""End to end: download CIFAR-10 from a real HTTP server, prepare it, and train on it; train
on an LSUN LMDB and on an image folder with a corrupt file. Every file is a tiny one in
the real format, and every run lands in a real MLflow SQLite store."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from conftest import TINY_RUN
from http_files import FileServer
from makers_folders import make_image_folder, make_lsun
from makers_torchvision import make_cifar10_tarball
from mlflow import MlflowClient

import ganbench_plugins.cifar10 as cifar10_plugin
from ganbench.data.prepare import decode_into
from ganbench.plugins import load_registries
from ganbench.plugins.interfaces import DatasetRequest


def _only_run(tmp_path) -> tuple[MlflowClient, object]:
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    [run] = client.search_runs([e.experiment_id for e in client.search_experiments()])
    return client, run


@pytest.fixture
def cifar10_server(tmp_path, monkeypatch):
    """The official archive's URL and md5 pointed at a tiny archive on 127.0.0.1."""
    archive = tmp_path / "served" / cifar10_plugin.ARCHIVE
    archive.parent.mkdir()
    arrays = make_cifar10_tarball(archive, per_batch=8, test=4)  # 40 train, 4 test
    body = archive.read_bytes()
    with FileServer() as server:
        server.files["/cifar-10-python.tar.gz"] = body
        monkeypatch.setattr(cifar10_plugin, "URL", f"{server.url}/cifar-10-python.tar.gz")
        monkeypatch.setattr(cifar10_plugin, "ARCHIVE_MD5", hashlib.md5(body).hexdigest())
        yield server, arrays


def test_download_prepare_and_train_on_cifar10(ganbench_run_cli, tmp_path, cifar10_server):
    server, arrays = cifar10_server
    cache = tmp_path / "cache"
    got = ganbench_run_cli(
        "data", "download", "cifar10", "--cache-dir", str(cache), "--no-progress"
    )
    assert got.exit_code == 0, got.output
    root = cache / "datasets" / "cifar10"
    assert (root / "cifar-10-batches-py" / "data_batch_5").is_file()
    assert not list(root.glob("*.part"))

    args = ("run", "dcgan", "--dataset", "cifar10", "--resolution", "32", "--cache-dir")
    first = ganbench_run_cli(*args, str(cache), *TINY_RUN)
    assert first.exit_code == 0, first.output
    assert "prepared 40 images of cifar10 train at 32px in " in first.output
    second = ganbench_run_cli(*args, str(cache), *TINY_RUN)
    assert second.exit_code == 0, second.output
    assert "using prepared 40 images of cifar10 train at 32px from " in second.output

    # The cache the runs trained from equals a fresh decode of the downloaded files, and
    # (CIFAR-10 being 32x32 already) the very pixels that were put in the archive.
    [folder] = (cache / "prepared" / "cifar10").iterdir()
    cached = np.load(folder / "images.npy", mmap_mode="r")
    ds = load_registries().datasets.get("cifar10")
    source = ds.open(DatasetRequest("train", 32, None, {}), root)
    fresh = np.empty((len(source), 3, 32, 32), np.uint8)
    decoded = decode_into(source, fresh, 3, bad_images="stop", progress=False, description="t")
    np.testing.assert_array_equal(cached, fresh)
    np.testing.assert_array_equal(cached, arrays["train"][0].transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(np.load(folder / "labels.npy"), arrays["train"][1])
    np.testing.assert_array_equal(decoded.labels, arrays["train"][1])

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert [r.info.status for r in runs] == ["FINISHED", "FINISHED"]
    assert {r.data.params["dataset"] for r in runs} == {"cifar10"}
    assert all(r.data.params["resolution"] == "32" for r in runs)
    assert all(str(folder) in r.data.params["dataset_source"] for r in runs)
    assert [p for p, _ in server.hits] == ["/cifar-10-python.tar.gz"]  # downloaded once


def test_corrupt_download_is_rejected_and_not_kept(ganbench_run_cli, tmp_path, cifar10_server):
    server, _ = cifar10_server
    good = server.files["/cifar-10-python.tar.gz"]
    server.files["/cifar-10-python.tar.gz"] = good[:-10] + b"\x00" * 10  # same size, wrong md5
    cache = tmp_path / "cache"
    got = ganbench_run_cli(
        "data", "download", "cifar10", "--cache-dir", str(cache), "--no-progress"
    )
    assert got.exit_code == 1
    line = got.output.strip().splitlines()[-1]
    assert line.startswith("Error: ") and "md5" in line and "cifar-10-python.tar.gz" in line
    root = cache / "datasets" / "cifar10"
    assert not (root / "cifar-10-batches-py").exists()
    assert not [p for p in root.rglob("*") if p.is_file()]  # nothing half-written is kept


def test_train_on_an_lsun_category_from_lmdb(ganbench_run_cli, tmp_path):
    lsun = tmp_path / "lsun"
    make_lsun(lsun, {"bedroom": ("webp", 20), "kitchen": ("jpeg", 3)}, size=(40, 36))
    cache = tmp_path / "cache"
    got = ganbench_run_cli(
        "run", "dcgan", "--dataset", "lsun", "--category", "bedroom", "--resolution", "32",
        "--data-root", str(lsun), "--cache-dir", str(cache), *TINY_RUN,
    )  # fmt: skip
    assert got.exit_code == 0, got.output
    assert "prepared 20 images of lsun train at 32px" in got.output
    _, run = _only_run(tmp_path)
    assert run.info.status == "FINISHED"
    assert run.data.params["dataset"] == "lsun" and run.data.params["category"] == "bedroom"
    cached = np.load(next((cache / "prepared" / "lsun").iterdir()) / "images.npy")
    assert cached.shape == (20, 3, 32, 32)


def test_lsun_category_it_does_not_have(ganbench_run_cli, tmp_path):
    got = ganbench_run_cli(
        "run", "dcgan", "--dataset", "lsun", "--category", "bedrooms",
        "--data-root", str(tmp_path), *TINY_RUN,
    )  # fmt: skip
    assert got.exit_code == 2
    line = got.output.strip().splitlines()[-1]
    assert "lsun has no category 'bedrooms'" in line and "bedroom, bridge" in line
    assert not (tmp_path / "mlflow.db").exists()


def test_image_folder_with_a_corrupt_file_skips_and_says_which(ganbench_run_cli, tmp_path):
    faces = tmp_path / "faces"
    written = make_image_folder(faces, classes=None, per_class=20, size=(24, 20))
    [broken] = [written.paths[i] for i in written.bad]
    cache = tmp_path / "cache"
    args = ("run", "dcgan", "--dataset", "imagefolder", "--data-root", str(faces))
    got = ganbench_run_cli(*args, "--resolution", "32", "--cache-dir", str(cache), *TINY_RUN)
    assert got.exit_code == 0, got.output
    assert "skipped 1" in got.output and str(broken) in got.output
    assert "prepared 20 images of imagefolder train at 32px" in got.output
    _, run = _only_run(tmp_path)
    assert run.info.status == "FINISHED"

    stop = ganbench_run_cli(*args, "--resolution", "64", "--bad-images", "stop", *TINY_RUN)
    assert stop.exit_code == 1
    line = stop.output.strip().splitlines()[-1]
    assert line.startswith("Error: ") and str(broken) in line
