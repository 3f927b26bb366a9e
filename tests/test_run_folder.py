"""The run folder's lock (across real processes), checkpoint rotation, and what a resume
needs restored exactly: the data cursor, every random generator, the stop signals."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from ganbench.errors import UsageError
from ganbench.plugins.interfaces import ImageArray
from ganbench.rundir import checkpoint
from ganbench.rundir.folder import RunFolder, RunInUse, check_free
from ganbench.signals import STOP_SIGNALS, StopNow, StopSignals
from ganbench.training import rng
from ganbench.training.data import DeviceBatches, StreamedBatches


def _folder(tmp_path, name="run"):
    return RunFolder.create(tmp_path / name, {"run_id": "abc", "tracking_uri": "sqlite:///x"})


def test_the_lock_refuses_a_second_process_and_dies_with_the_first(tmp_path):
    folder = _folder(tmp_path)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
                import sys, time
                from ganbench.rundir.folder import RunFolder
                held = RunFolder.open({str(folder.path)!r})
                held.lock()
                print("locked", flush=True)
                time.sleep(600)
            """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert RunFolder.open(folder.path).held_elsewhere()
        with pytest.raises(RunInUse, match=rf"run abc is still running \(pid {holder.pid} on"):
            RunFolder.open(folder.path).lock()
    finally:
        holder.send_signal(signal.SIGKILL)  # no clean-up code runs: the kernel drops the lock
        holder.wait()
    again = RunFolder.open(folder.path)
    assert not again.held_elsewhere()
    again.lock()
    assert again.heartbeat().pid == os.getpid()


def test_checkpoints_keep_the_newest_two_and_best(tmp_path):
    folder = _folder(tmp_path)
    for step in (10, 20, 30, 40):
        folder.write_checkpoint({"format": checkpoint.CHECKPOINT_FORMAT, "step": step}, step)
    folder.write_best({"format": checkpoint.CHECKPOINT_FORMAT, "step": 20})
    assert [s for s, _ in folder.checkpoints()] == [40, 30]
    names = sorted(p.name for p in folder.checkpoint_dir.iterdir())
    assert names == ["best.pt", "step-000000030.pt", "step-000000040.pt"]  # no temp files


def test_a_run_dir_that_holds_something_is_refused(tmp_path):
    _folder(tmp_path, "taken")
    with pytest.raises(UsageError, match="already holds run abc; continue it with"):
        check_free(tmp_path / "taken")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(UsageError, match="exists and is not empty"):
        check_free(tmp_path / "full")
    with pytest.raises(UsageError, match="is not a ganbench run folder"):
        RunFolder.open(tmp_path / "full")
    check_free(tmp_path / "new")  # absent: fine


@pytest.mark.parametrize("kind", [DeviceBatches, StreamedBatches])
def test_a_restored_cursor_continues_with_the_same_batches(kind):
    images = np.arange(50, dtype=np.uint8)[:, None, None, None].repeat(4, 1).repeat(2, 2)
    images = np.ascontiguousarray(images.repeat(2, 3))  # 50 x 4 x 2 x 2, image i has value i
    data = ImageArray(images)
    one = kind(data, 8, torch.device("cpu"), seed=3)
    stream = iter(one)
    for _ in range(9):  # into the second epoch (6 batches per epoch)
        next(stream)
    saved = one.state_dict()
    expected = [next(stream) for _ in range(8)]  # across the next epoch boundary too
    two = kind(data, 8, torch.device("cpu"), seed=3)
    two.load_state_dict(saved)
    got = [b for b, _ in zip(two, range(8), strict=False)]
    assert all(torch.equal(a, b) for a, b in zip(expected, got, strict=True))


def test_every_random_generator_is_restored():
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    saved = rng.capture()
    saved = torch.load(_roundtrip(saved), weights_only=True)  # as a checkpoint holds it
    drawn = (torch.rand(3), np.random.rand(3), random.random(), np.random.randn(1))
    torch.manual_seed(99)
    np.random.seed(99)
    random.seed(99)
    assert rng.restore(saved) == []
    again = (torch.rand(3), np.random.rand(3), random.random(), np.random.randn(1))
    assert torch.equal(drawn[0], again[0])
    assert np.array_equal(drawn[1], again[1]) and drawn[2] == again[2]
    assert np.array_equal(drawn[3], again[3])


def _roundtrip(obj):
    import io

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return buffer


@pytest.mark.parametrize("sig", STOP_SIGNALS)
def test_a_stop_signal_only_sets_a_flag_and_a_second_one_stops_at_once(sig):
    previous = signal.getsignal(sig)
    with StopSignals() as stop:
        os.kill(os.getpid(), sig)
        assert stop.received == sig  # the process lives on; the loop reads the flag
        with pytest.raises(StopNow):
            os.kill(os.getpid(), sig)
    assert signal.getsignal(sig) == previous
