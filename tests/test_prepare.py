"""The prepared cache: equal to a fresh decode, reused, invalidated, never half-trusted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ganbench.data.decode import is_image_file, open_image
from ganbench.data.prepare import cache_folder, decode_into, prepare
from ganbench.data.transform import to_array
from ganbench.errors import BadImageError
from ganbench.plugins.interfaces import Dataset, DatasetRequest, ImageSource


class _PngSource(ImageSource):
    def __init__(self, root: Path, interrupt_at: int | None = None) -> None:
        self.paths = sorted(p for p in root.iterdir() if is_image_file(p))
        self.interrupt_at = interrupt_at

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, index: int):
        if index == self.interrupt_at:
            raise KeyboardInterrupt
        return open_image(self.paths[index]), index % 3

    def files(self) -> list[Path]:
        return list(self.paths)


class _Folder(Dataset):
    name = "pngs"
    summary = "test images"
    channels = 3
    num_classes = 3
    default_resolution = 16
    resolutions = (8, 16)
    splits = ("train",)
    license = citation = obtain = "test"
    interrupt_at: int | None = None

    def open(self, request: DatasetRequest, root: Path) -> ImageSource:
        return _PngSource(root, self.interrupt_at)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "images"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(7):
        h, w = (20, 30) if i % 2 else (24, 24)  # non-square ones are center-cropped
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / f"{i}.png")
    good = (root / "6.png").read_bytes()
    (root / "3.png").write_bytes(good[: len(good) // 3])  # truncated
    (root / "notes.txt").write_text("not an image")
    return root


def _prepare(root, cache, **kw):
    kw.setdefault("say", lambda _: None)
    kw.setdefault("workers", 1)  # _Folder's interrupt_at is a class attribute of this process
    return prepare(_Folder(), DatasetRequest("train", 16), root, cache, progress=False, **kw)


def test_center_crop_then_resize_matches_an_independent_computation():
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    ours = to_array(Image.fromarray(pixels), 16, 3)
    ref = Image.fromarray(pixels[:, 5:25]).resize((16, 16), Image.BILINEAR)  # central 20x20
    np.testing.assert_array_equal(ours, np.asarray(ref).transpose(2, 0, 1))
    grey = to_array(Image.fromarray(pixels), 16, 1)
    assert grey.shape == (1, 16, 16)


def test_prepared_cache_equals_a_fresh_decode(folder, tmp_path):
    messages = []
    data, reused = _prepare(folder, tmp_path / "cache", say=messages.append)
    assert not reused and len(data) == 6 and data.images.shape == (6, 3, 16, 16)
    assert isinstance(data.images, np.memmap)
    fresh = np.empty((7, 3, 16, 16), np.uint8)
    decoded = decode_into(
        _PngSource(folder), fresh, 3, bad_images="skip", progress=False, description=""
    )
    np.testing.assert_array_equal(data.images, fresh[: decoded.count])
    np.testing.assert_array_equal(data.labels, [0, 1, 2, 1, 2, 0])  # 3.png skipped
    # the skipped file is reported by name and listed beside the cache
    assert len(messages) == 1 and "skipped 1 unreadable image(s)" in messages[0]
    assert "3.png" in messages[0]
    out = cache_folder(tmp_path / "cache", _Folder(), DatasetRequest("train", 16))
    assert "3.png" in (out / "bad_images.txt").read_text()
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["count"], manifest["skipped"], manifest["resolution"]) == (6, 1, 16)


def test_second_call_reuses_and_a_changed_file_invalidates(folder, tmp_path):
    _prepare(folder, tmp_path / "cache")
    data, reused = _prepare(folder, tmp_path / "cache")
    assert reused and len(data) == 6
    Image.new("RGB", (16, 16), (255, 0, 0)).save(folder / "0.png")
    data, reused = _prepare(folder, tmp_path / "cache")
    assert not reused
    assert (data.images[0, 0] == 255).all() and (data.images[0, 1] == 0).all()


def test_stop_policy_names_the_file(folder, tmp_path):
    with pytest.raises(BadImageError, match=r"3\.png.*--bad-images skip"):
        _prepare(folder, tmp_path / "cache", bad_images="stop", chunk=2)
    parent = tmp_path / "cache" / "prepared" / "pngs"
    assert [p.name for p in parent.iterdir()] == ["train-16px.partial"]  # no cache
    # The chunk before the bad file was kept: skipping bad files continues from there.
    messages = []
    data, reused = _prepare(folder, tmp_path / "cache", say=messages.append)
    assert not reused and len(data) == 6
    assert messages[0].startswith("continuing: 2 of 7 images already decoded")
    assert [p.name for p in parent.iterdir()] == ["train-16px"]


def test_interrupted_preparation_leaves_nothing_trusted_and_continues(folder, tmp_path):
    _Folder.interrupt_at = 4
    try:
        with pytest.raises(KeyboardInterrupt):
            _prepare(folder, tmp_path / "cache", chunk=2)
    finally:
        _Folder.interrupt_at = None
    parent = tmp_path / "cache" / "prepared" / "pngs"
    assert [p.name for p in parent.iterdir()] == ["train-16px.partial"]  # no cache
    messages = []
    data, reused = _prepare(folder, tmp_path / "cache", say=messages.append)
    assert not reused and len(data) == 6
    assert messages[0].startswith("continuing: 4 of 7 images already decoded")
    fresh, _ = _prepare(folder, tmp_path / "fresh")
    np.testing.assert_array_equal(data.images, fresh.images)
    np.testing.assert_array_equal(data.labels, fresh.labels)
    assert [p.name for p in parent.iterdir()] == ["train-16px"]


def test_a_cache_without_its_manifest_is_rebuilt(folder, tmp_path):
    _prepare(folder, tmp_path / "cache")
    out = cache_folder(tmp_path / "cache", _Folder(), DatasetRequest("train", 16))
    (out / "manifest.json").unlink()  # as if the process died before sealing it
    _, reused = _prepare(folder, tmp_path / "cache")
    assert not reused and (out / "manifest.json").is_file()


def test_a_sealed_folder_another_process_placed_meanwhile_is_kept(tmp_path):
    from ganbench.files.sealed import sealed_folder

    target = tmp_path / "stats"
    with sealed_folder(target) as tmp:
        (tmp / "x").write_text("ours")
        target.mkdir()  # another process sealed the same folder while this one built
        (target / "x").write_text("theirs")
    assert (target / "x").read_text() == "theirs"
    assert [p.name for p in tmp_path.iterdir()] == ["stats"]  # ours is gone
    with sealed_folder(target) as tmp:  # a folder that was there before is stale
        (tmp / "x").write_text("new")
    assert (target / "x").read_text() == "new"
