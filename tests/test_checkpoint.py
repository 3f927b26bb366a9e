"""Checkpoint files: atomic replacement and clear errors on truncated or foreign files."""

from __future__ import annotations

import pytest
import torch

from ganbench import checkpoint
from ganbench.errors import CheckpointError

FMT = checkpoint.CHECKPOINT_FORMAT


def test_save_replaces_atomically_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "ckpt" / "last.pt"
    checkpoint.save_atomic({"format": FMT, "step": 1, "w": torch.ones(3)}, path)
    checkpoint.save_atomic({"format": FMT, "step": 2, "w": torch.zeros(3)}, path)
    assert checkpoint.load_file(path, FMT)["step"] == 2
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]


def test_failed_save_keeps_the_previous_file(tmp_path):
    path = tmp_path / "last.pt"
    checkpoint.save_atomic({"format": FMT, "step": 1}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        checkpoint.save_atomic({"format": FMT, "bad": Unpicklable()}, path)
    assert checkpoint.load_file(path, FMT)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_truncated_file_is_named(tmp_path):
    path = tmp_path / "last.pt"
    checkpoint.save_atomic({"format": FMT, "w": torch.randn(1000)}, path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=rf"{path} is truncated or not a ganbench file"):
        checkpoint.load_file(path, FMT)


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        checkpoint.load_file(tmp_path / "nope.pt", FMT)
    torch.save({"weights": torch.ones(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="is not a ganbench-checkpoint/1 file"):
        checkpoint.load_file(tmp_path / "other.pt", FMT)
