"""ganbench.files.sealed, the one way files and folders are written whole: the file is whole
after success, untouched after an error, and the bytes and the rename are fsync'ed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ganbench.files.sealed import atomic_path, commit_file, sealed_folder, write_atomic


@pytest.fixture
def fsynced(monkeypatch) -> list[tuple[str, Path]]:
    """Every ``os.fsync`` (and ``os.replace``) in order, by the path the descriptor names:
    a record of what was flushed when, the calls themselves still made."""
    events: list[tuple[str, Path]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", Path(os.readlink(f"/proc/self/fd/{fd}"))))
        real_fsync(fd)

    def replace(src, dst) -> None:
        events.append(("replace", Path(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return events


def test_atomic_path_gives_the_whole_file_flushed_before_and_after_the_rename(tmp_path, fsynced):
    path = tmp_path / "out" / "state.bin"  # the folder is made
    with atomic_path(path) as tmp:
        assert tmp.parent == path.parent and tmp != path
        with tmp.open("wb") as fh:
            for _ in range(4):
                fh.write(b"x" * 1000)
        assert not path.exists()  # nothing at the final name until the block ends
    assert path.read_bytes() == b"x" * 4000
    assert sorted(p.name for p in path.parent.iterdir()) == ["state.bin"]
    [(first, flushed), (second, renamed), (third, folder)] = fsynced
    assert (first, flushed) == ("fsync", tmp)  # the bytes, before they take the name
    assert (second, renamed) == ("replace", path)
    assert (third, folder) == ("fsync", path.parent)  # then the rename itself


def test_atomic_path_keeps_the_old_file_and_no_temporary_on_error(tmp_path, fsynced):
    path = tmp_path / "state.json"
    path.write_text('{"step": 1}')
    with pytest.raises(RuntimeError, match="killed mid-write"), atomic_path(path) as tmp:
        tmp.write_text('{"ste')
        raise RuntimeError("killed mid-write")
    assert path.read_text() == '{"step": 1}'
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
    assert not any(event == "replace" for event, _ in fsynced)


def test_write_atomic_replaces_text_and_bytes_whole(tmp_path):
    path = tmp_path / "a.txt"
    write_atomic(path, "first, longer text")
    write_atomic(path, "é")
    assert path.read_bytes() == "é".encode()
    write_atomic(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_commit_file_flushes_a_streamed_file_and_its_rename(tmp_path, fsynced):
    part = tmp_path / "data.bin.part"
    part.write_bytes(b"streamed")
    commit_file(part, tmp_path / "data.bin")
    assert (tmp_path / "data.bin").read_bytes() == b"streamed" and not part.exists()
    assert fsynced == [
        ("fsync", part),
        ("replace", tmp_path / "data.bin"),
        ("fsync", tmp_path),
    ]


def test_sealed_folder_flushes_its_files_then_the_rename(tmp_path, fsynced):
    target = tmp_path / "stats"
    with sealed_folder(target) as tmp:
        (tmp / "sub").mkdir()
        (tmp / "sub" / "features.npy").write_bytes(b"f")
        (tmp / "manifest.json").write_text("{}")
    assert (target / "manifest.json").read_text() == "{}"
    assert (target / "sub" / "features.npy").read_bytes() == b"f"
    flushed_before = {p.relative_to(tmp) for e, p in fsynced[:-2] if e == "fsync"}
    assert flushed_before == {
        Path("."),
        Path("sub"),
        Path("manifest.json"),
        Path("sub/features.npy"),
    }
    assert fsynced[-2:] == [("replace", target), ("fsync", tmp_path)]
    # On error nothing appears, and the temporary folder is gone.
    with pytest.raises(OSError), sealed_folder(tmp_path / "other") as tmp:
        (tmp / "half").write_text("x")
        raise OSError("disk full")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stats"]
