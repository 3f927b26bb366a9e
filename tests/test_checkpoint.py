"""Checkpoint files: atomic replacement, a checksum that catches flipped bytes and
truncation anywhere (old files without one still load), a full disk in one line, and
clear errors on truncated or foreign files."""

from __future__ import annotations

import errno
import shutil
import zipfile

import pytest
import torch

from ganbench.errors import CheckpointError
from ganbench.rundir import checkpoint

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


# ---- seals: a checksum in every file, checked at load ------------------------------------


def _sealed(tmp_path, fmt: str = FMT):
    path = tmp_path / "sealed.pt"
    checkpoint.save_atomic({"format": fmt, "step": 7, "w": torch.randn(5000)}, path)
    return path, path.read_bytes()


def test_files_are_sealed_and_any_torch_reader_still_reads_them(tmp_path):
    path, data = _sealed(tmp_path)
    assert checkpoint.check_seal(data, path) is True
    assert data[-80:].startswith(checkpoint.SEAL_PREFIX)
    # the seal is the zip's comment: torch.load (also memory-mapped) and zipfile read it
    assert torch.load(path, weights_only=True, mmap=True)["step"] == 7
    assert zipfile.ZipFile(path).comment.startswith(checkpoint.SEAL_PREFIX)
    assert checkpoint.load_file(path, FMT)["step"] == 7


@pytest.mark.parametrize("where", [0, 37, 0.5, -130, -100, -90, -60, -1])
@pytest.mark.parametrize("fmt", [FMT, checkpoint.GENERATOR_FORMAT])
def test_a_flipped_byte_anywhere_is_detected(tmp_path, where, fmt):
    """The header, a tensor's bytes, the zip64 records, the end record, the seal itself."""
    path, data = _sealed(tmp_path, fmt)
    at = int(len(data) * where) if isinstance(where, float) else where % len(data)
    damaged = bytearray(data)
    damaged[at] ^= 0x04
    path.write_bytes(bytes(damaged))
    with pytest.raises(CheckpointError) as caught:
        checkpoint.load_file(path, fmt)
    message = str(caught.value)
    assert message.startswith(f"{path} is ") and "\n" not in message
    assert "use an intact copy or the previous checkpoint" in message


def test_a_flipped_bit_in_a_tensor_is_named_as_a_checksum_mismatch(tmp_path):
    # torch.load alone reads this file without a word (it ignores the zip's CRCs)
    path, data = _sealed(tmp_path)
    damaged = bytearray(data)
    damaged[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(damaged))
    assert torch.load(path, weights_only=True)["step"] == 7
    with pytest.raises(CheckpointError, match=r"is damaged \(its sha256 is [0-9a-f]{12}\.\.\., it"):
        checkpoint.load_file(path, FMT)


@pytest.mark.parametrize("cut", [1, 40, 80, 81, 102, 2000, 0.5])
def test_a_truncated_file_is_detected(tmp_path, cut):
    path, data = _sealed(tmp_path)
    keep = int(len(data) * cut) if isinstance(cut, float) else len(data) - cut
    path.write_bytes(data[:keep])
    with pytest.raises(CheckpointError, match=rf"^{path} is (truncated|damaged)"):
        checkpoint.load_file(path, FMT)


def test_an_old_file_without_a_seal_still_loads(tmp_path):
    """Checkpoints written before seals existed: plain torch.save, no zip comment."""
    path = tmp_path / "old.pt"
    torch.save({"format": FMT, "step": 3, "w": torch.ones(4)}, path)
    assert checkpoint.check_seal(path.read_bytes(), path) is False
    assert checkpoint.load_file(path, FMT)["step"] == 3


def test_no_space_is_one_line_naming_the_folder_and_the_size(tmp_path, monkeypatch):
    """ENOSPC from the write itself (simulated: torch.save writes part of the file, then
    the kernel's answer); the previous file stays and no temporary is left."""
    path = tmp_path / "last.pt"
    checkpoint.save_atomic({"format": FMT, "step": 1}, path)
    real = torch.save

    def full(obj, f):
        real(obj, f)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", full)
    with pytest.raises(checkpoint.DiskFull) as caught:
        checkpoint.save_atomic({"format": FMT, "step": 2, "w": torch.ones(250_000)}, path)
    message = str(caught.value)
    assert message.startswith(f"no space left in {tmp_path} to write last.pt: it needs about 1.")
    assert " MB are free" in message and "\n" not in message
    monkeypatch.undo()
    assert checkpoint.load_file(path, FMT)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_too_little_free_space_is_refused_before_writing(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    free = shutil.disk_usage(tmp_path).free
    big = {"format": FMT, "w": torch.empty(0, dtype=torch.uint8)}
    monkeypatch.setattr(checkpoint, "_OVERHEAD", free + 1)  # more than the disk has free
    with pytest.raises(checkpoint.DiskFull, match=f"no space left in {tmp_path}"):
        checkpoint.save_atomic(big, path)
    assert list(tmp_path.iterdir()) == []
