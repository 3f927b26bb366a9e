"""Resumes that can trust their checkpoints, and fail without leaving anything behind.

Tiny DCGAN runs on digits through the command line, in-process, into real SQLite MLflow
stores: a run stopped at step 10 (as by SIGTERM) keeps checkpoints 8 and 10. A newest
checkpoint with flipped bytes or cut short is caught by its checksum and the resume falls
back to step 8 with one warning line, ending bit for bit as the uninterrupted run; a
checkpoint written before checksums existed still resumes; no intact checkpoint at all is
one line. A resume that fails early (a device that is not there, no checkpoint in the
artifacts, a damaged one there) leaves no folder that would block the next one.
"""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest
from mlflow import MlflowClient
from tinyruns import (
    STEPS,
    STOP,
    assert_as_uninterrupted,
    error_lines,
    invoke,
    reference_run,
    stopped_run,
    the_run,
)

from ganbench.rundir import checkpoint
from ganbench.rundir.folder import RunFolder, default_path


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """The folder of the module's MLflow store (one: creating one takes seconds)."""
    return tmp_path_factory.mktemp("store")


@pytest.fixture(scope="module")
def reference(store) -> Path:
    """The uninterrupted run's folder."""
    return reference_run(store)


def flip_bytes(path: Path) -> None:
    """A few flipped bits in the middle of the file (in the tensors: torch.load alone reads
    such a file without a word)."""
    data = bytearray(path.read_bytes())
    for at in (len(data) // 2, len(data) // 2 + 1, len(data) // 3):
        data[at] ^= 0x10
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])


def unseal(path: Path) -> None:
    """Make ``path`` what ganbench wrote before checksums: the zip without its comment."""
    data = path.read_bytes()
    assert data[-80:].startswith(checkpoint.SEAL_PREFIX)
    body = data[:-80]
    path.write_bytes(body[:-2] + struct.pack("<H", 0))


@pytest.mark.parametrize("damage", [flip_bytes, truncate], ids=["flipped", "truncated"])
def test_a_damaged_newest_checkpoint_falls_back_with_one_warning(
    tmp_path, store, reference, damage
):
    uri, run_dir = stopped_run(store, tmp_path)
    newest = run_dir / "checkpoints" / f"step-{STOP:09d}.pt"
    damage(newest)
    resumed = invoke(tmp_path, "resume", str(run_dir), "--no-progress")
    assert resumed.exit_code == 0, resumed.output
    warnings = [line for line in resumed.output.splitlines() if "step-000000010.pt" in line]
    assert len(warnings) == 1, resumed.output
    [warning] = warnings
    assert warning.startswith("warning: step-000000010.pt is ")
    assert warning.endswith("resuming from the checkpoint before it, step-000000008.pt")
    if damage is flip_bytes:
        assert "its sha256 is" in warning
    assert f"resumed from step 8 of {STEPS}" in resumed.output
    _, run = the_run(uri, run_dir)
    assert run.info.status == "FINISHED"
    assert_as_uninterrupted(reference, run_dir)


def test_an_old_checkpoint_without_a_checksum_still_resumes(tmp_path, store, reference):
    _, run_dir = stopped_run(store, tmp_path)
    newest = run_dir / "checkpoints" / f"step-{STOP:09d}.pt"
    unseal(newest)
    assert checkpoint.check_seal(newest.read_bytes(), newest) is False
    resumed = invoke(tmp_path, "resume", str(run_dir), "--no-progress")
    assert resumed.exit_code == 0, resumed.output
    assert "warning" not in resumed.output
    assert f"resumed from step {STOP} of {STEPS}" in resumed.output
    assert_as_uninterrupted(reference, run_dir)
    # what it writes from now on is sealed
    final = run_dir / "checkpoints" / f"step-{STEPS:09d}.pt"
    assert checkpoint.check_seal(final.read_bytes(), final) is True
    generator = run_dir / "generator.pt"
    assert checkpoint.check_seal(generator.read_bytes(), generator) is True


def test_no_intact_checkpoint_is_one_line_naming_the_folder_and_changes_nothing(tmp_path, store):
    uri, run_dir = stopped_run(store, tmp_path)
    for _, path in RunFolder.open(run_dir).checkpoints():
        flip_bytes(path)
    resumed = invoke(tmp_path, "resume", str(run_dir), "--no-progress")
    assert resumed.exit_code == 4, resumed.output  # as for no checkpoint: start over
    [line] = error_lines(resumed.output)
    assert line.startswith(f"Error: no intact checkpoint in {run_dir / 'checkpoints'}: ")
    assert "step-000000010.pt, step-000000008.pt are damaged" in line
    assert "Put an intact copy there" in line and "Traceback" not in resumed.output
    _, run = the_run(uri, run_dir)
    assert run.info.status == "KILLED" and "ganbench.resumes" not in run.data.tags
    assert not RunFolder.open(run_dir).held_elsewhere()


def _artifact_checkpoints(client: MlflowClient, run_id: str) -> Path:
    uri = client.get_run(run_id).info.artifact_uri
    return Path(uri.removeprefix("file://")) / "checkpoints"


def test_a_failed_resume_leaves_nothing_that_blocks_the_next(tmp_path, store, reference):
    """The run's folder is not on this machine (moved away): a resume fetches the
    checkpoint from MLflow into CACHE/runs/RUN_ID. Each failed try leaves no folder (one
    used to stay, without a checkpoint, and sent every later resume to "start it again");
    a folder such a try left behind is made good; then the resume works and is exact."""
    uri, run_dir = stopped_run(store, tmp_path)
    client, run = the_run(uri, run_dir)
    run_id = run.info.run_id
    run_dir.rename(tmp_path / "elsewhere")  # the folder is on another machine now
    cache = tmp_path / "other-cache"
    local = default_path(cache, run_id)
    resume = ("resume", run_id, "--tracking-uri", uri, "--cache-dir", str(cache), "--no-progress")

    # a device that is not there: refused before anything
    bad_device = invoke(tmp_path, *resume, "--device", "cuda:7")
    assert bad_device.exit_code == 2 and len(error_lines(bad_device.output)) == 1
    assert not local.exists()

    # no checkpoint in the run's artifacts
    artifacts = _artifact_checkpoints(client, run_id)
    artifacts.rename(artifacts.with_name("moved"))
    missing = invoke(tmp_path, *resume)
    assert missing.exit_code == 4, missing.output
    [line] = error_lines(missing.output)
    assert "no checkpoint in its artifacts" in line or "has no checkpoints/last.pt" in line
    assert not local.exists(), list(local.rglob("*"))
    artifacts.with_name("moved").rename(artifacts)

    # a damaged checkpoint in the artifacts
    last = artifacts / "last.pt"
    good = last.read_bytes()
    flip_bytes(last)
    damaged = invoke(tmp_path, *resume)
    assert damaged.exit_code == 1, damaged.output
    [line] = error_lines(damaged.output)
    assert "last.pt is damaged" in line
    assert not local.exists()
    last.write_bytes(good)

    # a folder that an earlier ganbench left behind after such a failure
    stub = RunFolder.create(
        local, {"run_id": run_id, "tracking_uri": uri, "fetched_from": "elsewhere"}
    )
    assert stub.checkpoints() == []
    listing = invoke(tmp_path, "runs", "--tracking-uri", uri, "--cache-dir", str(cache))
    [row] = [r for r in listing.output.splitlines() if r.startswith(run_id)]
    assert row.endswith(f"from step {STOP}: ganbench resume {run_id}"), row  # from MLflow

    run = client.get_run(run_id)
    assert run.info.status == "KILLED" and "ganbench.resumes" not in run.data.tags
    resumed = invoke(tmp_path, *resume)
    assert resumed.exit_code == 0, resumed.output
    assert f"fetched the checkpoint of step {STOP} from the run's artifacts" in resumed.output
    assert f"resumed from step {STOP} of {STEPS}" in resumed.output
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["ganbench.resumes"] == "1"
    assert_as_uninterrupted(reference, local)
    shutil.rmtree(tmp_path / "elsewhere")
