"""The lsun, celeba, imagenet and imagefolder datasets on tiny copies in the real formats."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from makers_folders import (
    Written,
    assert_same_image,
    make_celeba,
    make_image_folder,
    make_imagenet,
    make_lsun,
    read_pixels,
    smooth_image,
    write_image,
)

from ganbench.errors import BadImageError, DatasetNotFoundError, UsageError
from ganbench.plugins.interfaces import DatasetRequest, ImageSource
from ganbench_plugins import lsun as lsun_plugin
from ganbench_plugins.celeba import CelebADataset
from ganbench_plugins.imagefolder import ImageFolderDataset
from ganbench_plugins.imagenet import ImageNetDataset
from ganbench_plugins.lsun import CATEGORIES, LsunDataset


def request(split: str = "train", root: Path | None = None, **options: str) -> DatasetRequest:
    return DatasetRequest(split, 64, str(root) if root is not None else None, options)


def assert_reads(source: ImageSource, written: Written, *, files: bool = True) -> None:
    """Every image of ``source`` has the pixels and label written, in the same order."""
    assert len(source) == len(written)
    good = [a for a in written.arrays if a is not None]
    # the check below tells images apart only if they differ well beyond JPEG's error
    for i in range(len(good)):
        for j in range(i):
            assert np.abs(good[i].astype(int) - good[j].astype(int)).mean() > 10
    for i in range(len(source)):
        if i in written.bad:
            continue
        image, label = source.read(i)
        assert_same_image(image, written.arrays[i], written.lossless[i])
        assert label == written.labels[i], i
    if files:
        assert source.files() == written.paths


# --- registration -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("lsun", LsunDataset),
        ("celeba", CelebADataset),
        ("imagenet", ImageNetDataset),
        ("imagefolder", ImageFolderDataset),
    ],
)
def test_registered_and_described(name, cls):
    from ganbench.plugins import load_registries

    ds = load_registries().datasets.get(name)
    assert type(ds) is cls and ds.name == name
    assert ds.channels == 3 and ds.default_resolution in ds.resolutions
    assert ds.remote_files(ds.splits[0]) == ()  # none of them can be downloaded by ganbench
    assert ds.license and ds.citation and ds.summary
    assert "--data-root" in ds.obtain or "<root>" in ds.obtain


def test_described_as_asked():
    assert LsunDataset.splits == ("train", "val") and LsunDataset.categories == CATEGORIES
    assert len(CATEGORIES) == 10 and CATEGORIES[0] == "bedroom"
    assert LsunDataset.resolutions == (32, 64, 128, 256) and LsunDataset.num_classes is None
    assert "1506.03365" in LsunDataset.citation and "download.py -c" in LsunDataset.obtain
    assert CelebADataset.splits == ("train", "valid", "test", "all")
    assert CelebADataset.num_classes is None and "ICCV" in CelebADataset.citation
    assert ImageNetDataset.num_classes == 1000 and ImageNetDataset.splits == ("train", "val")
    assert "ILSVRC2012_img_train.tar" in ImageNetDataset.obtain
    assert ImageFolderDataset.splits == ("train",) and ImageFolderDataset.num_classes is None


# --- LSUN -------------------------------------------------------------------------------


def test_lsun_webp_category_reads_exact_pixels(tmp_path):
    written = make_lsun(tmp_path)["bedroom"]
    source = LsunDataset().open(request(category="bedroom"), tmp_path)
    assert_reads(source, written, files=False)
    assert source.files() == [tmp_path / "bedroom_train_lmdb" / "data.mdb"]
    assert source.class_names() == ("bedroom",)


def test_lsun_defaults_to_bedroom(tmp_path):
    make_lsun(tmp_path, {"bedroom": ("webp", 2), "bridge": ("webp", 3)})
    source = LsunDataset().open(request(), tmp_path)
    assert len(source) == 2 and source.class_names() == ("bedroom",)


def test_lsun_jpeg_category_and_val_split(tmp_path):
    written = make_lsun(tmp_path, {"kitchen": ("jpeg", 3)}, split="val")["kitchen"]
    source = LsunDataset().open(request("val", category="kitchen"), tmp_path)
    assert_reads(source, written, files=False)
    assert source.files() == [tmp_path / "kitchen_val_lmdb" / "data.mdb"]
    with pytest.raises(DatasetNotFoundError, match="kitchen_train_lmdb"):
        LsunDataset().open(request("train", category="kitchen"), tmp_path)


def test_lsun_several_categories_are_labelled_in_the_order_given(tmp_path):
    made = make_lsun(tmp_path)
    source = LsunDataset().open(request(category="kitchen, bedroom"), tmp_path)
    assert source.class_names() == ("kitchen", "bedroom")
    kitchen, bedroom = made["kitchen"], made["bedroom"]
    expected = Written(
        paths=kitchen.paths + bedroom.paths,
        arrays=kitchen.arrays + bedroom.arrays,
        labels=[0] * len(kitchen) + [1] * len(bedroom),
        lossless=kitchen.lossless + bedroom.lossless,
    )
    assert_reads(source, expected, files=False)
    assert source.files() == [
        tmp_path / "kitchen_train_lmdb" / "data.mdb",
        tmp_path / "bedroom_train_lmdb" / "data.mdb",
    ]


def test_lsun_unknown_category_or_split_lists_what_exists(tmp_path):
    make_lsun(tmp_path)
    with pytest.raises(UsageError, match="no category 'attic'") as info:
        LsunDataset().open(request(category="bedroom,attic"), tmp_path)
    assert all(c in str(info.value) for c in CATEGORIES)
    with pytest.raises(UsageError, match="given twice"):
        LsunDataset().open(request(category="bedroom,bedroom"), tmp_path)
    # the request is checked before the folder: an empty root still says what is wrong
    with pytest.raises(UsageError, match=r"no split 'test'.*train, val"):
        LsunDataset().open(request("test"), tmp_path / "nowhere")
    with pytest.raises(UsageError, match="no category"):
        LsunDataset().open(request(category="attic"), tmp_path / "nowhere")


def test_lsun_missing_lmdb_names_folder_and_fix(tmp_path):
    make_lsun(tmp_path, {"bedroom": ("webp", 1)})
    with pytest.raises(DatasetNotFoundError) as info:
        LsunDataset().open(request(category="bedroom,tower"), tmp_path)
    message = str(info.value)
    assert str(tmp_path / "tower_train_lmdb") in message
    assert "bedroom_train_lmdb" not in message.split("expects")[0]  # only the missing one
    assert "download.py -c tower" in message and "tower_train_lmdb.zip" in message
    assert "github.com/fyu/lsun" in message and "--data-root" in message
    (tmp_path / "church_outdoor_train_lmdb").mkdir()  # a folder without data.mdb
    with pytest.raises(DatasetNotFoundError, match=r"no data\.mdb"):
        LsunDataset().open(request(category="church_outdoor"), tmp_path)


def test_lsun_corrupt_value_names_the_key_and_others_read(tmp_path):
    written = make_lsun(tmp_path, {"bedroom": ("webp", 3)}, corrupt={"bedroom": 1})["bedroom"]
    source = LsunDataset().open(request(), tmp_path)  # listing does not decode
    assert len(source) == 4 and len(written.bad) == 1
    bad = written.bad[0]
    with pytest.raises(BadImageError) as info:
        source.read(bad)
    assert "bedroom_train_lmdb" in str(info.value)
    assert written.keys[bad].decode() in str(info.value)
    assert_reads(source, written, files=False)


def test_lsun_opens_lazily_survives_pickling_and_writes_nothing_in_cwd(tmp_path, monkeypatch):
    written = make_lsun(tmp_path / "data", {"bedroom": ("webp", 2)})["bedroom"]
    folder = os.path.realpath(tmp_path / "data" / "bedroom_train_lmdb")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    source = LsunDataset().open(request(), tmp_path / "data")
    assert folder not in lsun_plugin._ENVS  # listing closed what it opened
    source.read(0)
    assert folder in lsun_plugin._ENVS
    # a second source of the same database in this process (py-lmdb refuses to open one
    # database twice), and a pickled copy as a spawned worker gets it
    again = LsunDataset().open(request(), tmp_path / "data")
    copy = pickle.loads(pickle.dumps(source))
    assert_same_image(again.read(1)[0], written.arrays[1], lossless=True)
    assert_same_image(copy.read(1)[0], written.arrays[1], lossless=True)
    assert list(cwd.iterdir()) == []  # torchvision's LSUN would leave a key cache here


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_lsun_forked_child_reopens_its_own_environment(tmp_path):
    written = make_lsun(tmp_path, {"bedroom": ("webp", 2)})["bedroom"]
    source = LsunDataset().open(request(), tmp_path)
    source.read(0)  # the parent holds the environment open
    parent_env = lsun_plugin.shared_env(tmp_path / "bedroom_train_lmdb")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        ok = False
        try:
            image, _ = source.read(1)
            child_env = lsun_plugin.shared_env(tmp_path / "bedroom_train_lmdb")
            ok = child_env is not parent_env and np.array_equal(
                read_pixels(image), written.arrays[1]
            )
        finally:
            os.write(write, b"1" if ok else b"0")
            os._exit(0)
    os.close(write)
    assert os.read(read, 1) == b"1"
    os.waitpid(pid, 0)
    os.close(read)
    # the parent's environment still works after the child closed its copy
    assert_same_image(source.read(1)[0], written.arrays[1], lossless=True)


# --- CelebA -----------------------------------------------------------------------------


def test_celeba_splits_follow_the_partition_file(tmp_path):
    made = make_celeba(tmp_path)
    ds = CelebADataset()
    sizes = {}
    for split in ("train", "valid", "test", "all"):
        source = ds.open(request(split), tmp_path)
        assert_reads(source, made[split])
        assert source.class_names() == ()
        sizes[split] = len(source)
    assert sizes == {"train": 4, "valid": 2, "test": 3, "all": 9}


def test_celeba_root_may_be_the_celeba_folder_itself(tmp_path):
    made = make_celeba(tmp_path, {"train": 2, "valid": 1, "test": 1}, nested=False)
    assert_reads(CelebADataset().open(request("valid"), tmp_path), made["valid"])


def test_celeba_missing_files_name_what_and_where(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        CelebADataset().open(request(), tmp_path)
    message = str(info.value)
    assert str(tmp_path / "celeba" / "img_align_celeba") in message
    assert "list_eval_partition.txt" in message and "--data-root" in message
    assert "mmlab.ie.cuhk.edu.hk" in message

    make_celeba(tmp_path)
    partition = tmp_path / "celeba" / "list_eval_partition.txt"
    partition.unlink()
    with pytest.raises(DatasetNotFoundError, match="no split file") as info:
        CelebADataset().open(request(), tmp_path)
    assert str(partition) in str(info.value)


def test_celeba_incomplete_copy_and_bad_partition_file(tmp_path):
    made = make_celeba(tmp_path)
    made["test"].paths[1].unlink()
    CelebADataset().open(request("train"), tmp_path)  # the other splits are complete
    with pytest.raises(DatasetNotFoundError, match=f"1 of the 3.*{made['test'].paths[1].name}"):
        CelebADataset().open(request("test"), tmp_path)
    partition = tmp_path / "celeba" / "list_eval_partition.txt"
    partition.write_text("000001.jpg 0\nimage_id,partition\n")
    with pytest.raises(DatasetNotFoundError, match="line 2"):
        CelebADataset().open(request("train"), tmp_path)


def test_celeba_unknown_split(tmp_path):
    with pytest.raises(UsageError, match=r"no split 'val'.*train, valid, test, all"):
        CelebADataset().open(request("val"), tmp_path)


def test_celeba_corrupt_image_fails_only_its_read(tmp_path):
    made = make_celeba(tmp_path)
    broken = made["train"].paths[2]
    broken.write_bytes(broken.read_bytes()[:200])
    source = CelebADataset().open(request("train"), tmp_path)
    with pytest.raises(BadImageError, match=broken.name):
        source.read(2)
    assert_same_image(source.read(3)[0], made["train"].arrays[3], lossless=False)


# --- ImageNet ---------------------------------------------------------------------------


def test_imagenet_train_and_val_by_wnid(tmp_path):
    made = make_imagenet(tmp_path, wnids=("n01443537", "n01440764"))
    for split, count in (("train", 6), ("val", 4)):
        source = ImageNetDataset().open(request(split), tmp_path)
        assert len(source) == count
        assert source.class_names() == ("n01440764", "n01443537")
        assert_reads(source, made[split])
        assert sorted(set(made[split].labels)) == [0, 1]


def test_imagenet_ignores_non_images_and_hidden_files(tmp_path):
    made = make_imagenet(tmp_path, per_class={"train": 2})
    wnid_folder = tmp_path / "train" / "n01440764"
    (wnid_folder / "n01440764.txt").write_text("not an image")
    (wnid_folder / "._n01440764_1000.JPEG").write_bytes(b"AppleDouble")
    (tmp_path / "train" / ".ipynb_checkpoints").mkdir()
    source = ImageNetDataset().open(request(), tmp_path)
    assert source.class_names() == ("n01440764", "n01443537")
    assert_reads(source, made["train"])


def test_imagenet_missing_or_unsorted_val(tmp_path):
    make_imagenet(tmp_path, per_class={"train": 1})
    with pytest.raises(DatasetNotFoundError) as info:
        ImageNetDataset().open(request("val"), tmp_path)
    message = str(info.value)
    assert str(tmp_path / "val") in message and "<wnid>" in message
    assert "image-net.org" in message and "--data-root" in message
    # the val tar as extracted: 50,000 images in one folder, not yet sorted by wnid
    write_image(tmp_path / "val" / "ILSVRC2012_val_00000001.JPEG", smooth_image(1), "jpeg")
    with pytest.raises(DatasetNotFoundError, match="holds images but no <wnid> folders"):
        ImageNetDataset().open(request("val"), tmp_path)
    (tmp_path / "val" / "n01440764").mkdir()  # a class folder, but empty
    with pytest.raises(DatasetNotFoundError, match="no images in the class folders"):
        ImageNetDataset().open(request("val"), tmp_path)


def test_imagenet_unknown_split(tmp_path):
    with pytest.raises(UsageError, match=r"no split 'test'.*train, val"):
        ImageNetDataset().open(request("test"), tmp_path)


# --- image folders ----------------------------------------------------------------------


def test_imagefolder_class_folders(tmp_path):
    made = make_image_folder(tmp_path)
    source = ImageFolderDataset().open(request(root=tmp_path), tmp_path)
    assert source.class_names() == ("cats", "dogs")
    assert len(source) == len(made) == 6  # 2+1 broken in cats, 2+1 nested in dogs
    assert made.labels == [0, 0, 0, 1, 1, 1]
    assert not set(made.junk) & set(source.files())
    assert_reads(source, made)


def test_imagefolder_corrupt_image_fails_only_its_read(tmp_path):
    made = make_image_folder(tmp_path, classes=None, per_class=3)
    source = ImageFolderDataset().open(request(root=tmp_path), tmp_path)  # does not decode
    assert len(source) == 4 and made.bad == [3]
    with pytest.raises(BadImageError) as info:
        source.read(3)
    assert str(made.paths[3]) in str(info.value) and "broken.jpg" in str(info.value)
    assert_reads(source, made)  # the others read fine, unlabelled


def test_imagefolder_flat_layout_is_unlabelled(tmp_path):
    made = make_image_folder(tmp_path, classes=None, corrupt=False)
    source = ImageFolderDataset().open(request(root=tmp_path), tmp_path)
    assert source.class_names() == () and made.labels == [None, None]
    assert_reads(source, made)


def test_imagefolder_ignores_folders_without_images(tmp_path):
    made = make_image_folder(tmp_path, classes=None, corrupt=False, junk=False)
    (tmp_path / "empty").mkdir()
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "readme.txt").write_text("no images here")
    assert_reads(ImageFolderDataset().open(request(root=tmp_path), tmp_path), made)


def test_imagefolder_mixed_layout_explains_both(tmp_path):
    make_image_folder(tmp_path, corrupt=False)
    write_image(tmp_path / "loose.png", smooth_image(5), "png")
    with pytest.raises(DatasetNotFoundError) as info:
        ImageFolderDataset().open(request(root=tmp_path), tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message and "loose.png" in message and "cats, dogs" in message
    assert "directly in the folder" in message and "sub-folder of images per class" in message


def test_imagefolder_needs_a_folder_of_images(tmp_path):
    with pytest.raises(UsageError, match="imagefolder needs --data-root FOLDER"):
        ImageFolderDataset().open(request(), tmp_path)
    with pytest.raises(UsageError, match=r"no split 'test'.*train"):
        ImageFolderDataset().open(request("test", root=tmp_path), tmp_path)
    missing = tmp_path / "missing"
    with pytest.raises(DatasetNotFoundError, match="does not exist") as info:
        ImageFolderDataset().open(request(root=missing), missing)
    assert str(missing) in str(info.value) and "--data-root" in str(info.value)
    (tmp_path / "notes.txt").write_text("nothing")
    (tmp_path / "sub").mkdir()
    with pytest.raises(DatasetNotFoundError, match="no images in") as info:
        ImageFolderDataset().open(request(root=tmp_path), tmp_path)
    assert str(tmp_path) in str(info.value)
