"""A checkpoint onto a full disk: one line naming the folder and the space needed, exit 1,
the previous checkpoint intact, the run FAILED but resumable, and `ganbench resume`
continues it, bit for bit, once there is room.

Two ways to a full disk: a real one (a small tmpfs, filled up after the first checkpoint;
mounting needs root, so it is skipped elsewhere), and ENOSPC from the write itself
(simulated: ``torch.save`` writes part of the file, then raises what the kernel raises).
"""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest
import torch
from tinyruns import (
    STEPS,
    assert_as_uninterrupted,
    error_lines,
    invoke,
    reference_run,
    the_run,
    train,
)

from ganbench.rundir import checkpoint
from ganbench.rundir.folder import RunFolder


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("store")


@pytest.fixture(scope="module")
def reference(store) -> Path:
    return reference_run(store)


def check_failed_resumable(store: Path, run_dir: Path, result) -> None:
    """What a checkpoint onto a full disk must leave: one line, exit 1, step 4 intact."""
    assert result.exit_code == 1, result.output
    [line] = error_lines(result.output)
    assert "Traceback" not in result.output
    folder = run_dir / "checkpoints"
    assert line.startswith(
        f"Error: no space left in {folder} to write step-000000008.pt: it needs about "
    )
    assert " MB are free. Free some space there (the previous files are intact); then" in line
    assert line.endswith(f"then resumable from step 4: ganbench resume {run_dir}")
    assert sorted(p.name for p in folder.iterdir()) == ["step-000000004.pt"]  # no temporary
    assert checkpoint.load_file(folder / "step-000000004.pt", checkpoint.CHECKPOINT_FORMAT)
    _, run = the_run(f"sqlite:///{store / 'm.db'}", run_dir)
    assert run.info.status == "FAILED"
    assert run.data.tags["ganbench.resumable"] == f"from step 4: ganbench resume {run.info.run_id}"


def resume_to_the_end(store: Path, run_dir: Path, reference: Path) -> None:
    resumed = invoke(store, "resume", str(run_dir), "--no-progress")
    assert resumed.exit_code == 0, resumed.output
    assert f"resumed from step 4 of {STEPS}" in resumed.output
    _, run = the_run(f"sqlite:///{store / 'm.db'}", run_dir)
    assert run.info.status == "FINISHED" and "ganbench.resumable" not in run.data.tags
    assert_as_uninterrupted(reference, run_dir)


def test_enospc_while_writing_a_checkpoint(tmp_path, store, reference, monkeypatch):
    real = torch.save

    def full(obj, f, *args, **kwargs):
        real(obj, f, *args, **kwargs)
        if "step-000000008" in str(f):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(f))

    run_dir = tmp_path / "run"
    monkeypatch.setattr(checkpoint.torch, "save", full)
    result = train(store, run_dir)
    monkeypatch.undo()
    check_failed_resumable(store, run_dir, result)
    resume_to_the_end(store, run_dir, reference)


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MB tmpfs of the test's own (root only)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_real_full_disk_after_the_first_checkpoint(small_disk, store, reference, monkeypatch):
    """After the checkpoint of step 4 a file takes all but 64 kB of the disk: the one of
    step 8 does not fit; deleting the file makes room for the resume."""
    filler = small_disk / "filler"
    write = RunFolder.write_checkpoint

    def then_fill(self, state, step):
        path = write(self, state, step)
        if step == 4:
            room = os.statvfs(small_disk)
            with filler.open("wb") as fh:  # allocated, not sparse
                os.posix_fallocate(fh.fileno(), 0, room.f_bavail * room.f_frsize - 64 * 1024)
        return path

    run_dir = small_disk / "run"
    monkeypatch.setattr(RunFolder, "write_checkpoint", then_fill)
    result = train(store, run_dir)
    monkeypatch.undo()
    check_failed_resumable(store, run_dir, result)
    filler.unlink()
    resume_to_the_end(store, run_dir, reference)
