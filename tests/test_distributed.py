"""Data-parallel training on the CPU with the gloo backend and real torchrun: replicas
that stay bit-identical, a gradient exchange that equals one process with the global
batch, one MLflow run per training, an elastic restart after ``kill -9`` of a worker, and
the refusals (a batch that does not divide, sync_bn on the CPU)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow import MlflowClient
from processes import finish, ganbench, logged_steps, wait_for

from ganbench.errors import UsageError
from ganbench.plugins.interfaces import ImageArray
from ganbench.rundir import checkpoint
from ganbench.rundir.folder import RunFolder
from ganbench.training import launcher
from ganbench.training.data import make_batches
from ganbench.training.distributed import check_global_batch, weights_digest
from ganbench.training.launcher import torchrun_args, torchrun_options, worker_argv

FMT = checkpoint.CHECKPOINT_FORMAT
TORCHRUN = str(Path(sys.executable).with_name("torchrun"))
#: 16 px digits with narrow networks: a step takes milliseconds, so what is measured is
#: the distributed machinery, not the convolutions.
TINY = (
    *("dcgan", "--dataset", "digits", "--resolution", "16", "--batch-size", "16"),
    *("--set", "ngf=8", "--set", "ndf=8", "--no-progress"),
)
#: No scoring (the digits preset scores at the end) where the test is about training.
UNSCORED = ("--eval-every", "0")


def _torchrun(folder: Path, *args: str, nproc: int = 2, restarts: int = 0, name: str = "tr"):
    """``torchrun --standalone --nproc-per-node N -m ganbench ARGS`` as users start it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return subprocess.Popen(
        [
            TORCHRUN,
            "--standalone",
            f"--nproc-per-node={nproc}",
            f"--max-restarts={restarts}",
            "-m",
            "ganbench",
            *args,
        ],
        cwd=folder,
        env=env,
        stdout=(folder / f"{name}.out").open("w"),
        stderr=(folder / f"{name}.err").open("w"),
        start_new_session=True,
    )


def _only_run(uri: str):
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 1, [r.info.run_id for r in runs]
    return client, runs[0]


def _nets(state: dict) -> dict[str, torch.nn.Module]:
    """The checkpoint's G and D as modules (for their parameters' digest)."""
    out = {}
    for label in ("generator", "discriminator"):
        holder = torch.nn.Module()
        for name, value in state[label].items():
            if "running" in name or "num_batches" in name:
                continue
            module = holder
            *path, leaf = name.split(".")
            for part in path:
                if not hasattr(module, part):
                    module.add_module(part, torch.nn.Module())
                module = getattr(module, part)
            module.register_parameter(leaf, torch.nn.Parameter(value))
        out[label] = holder
    return out


# ---- no processes -------------------------------------------------------------------------


def test_the_launcher_passes_every_option_but_its_own_to_the_workers():
    argv = ["run", "dcgan", "--nproc", "2", "-d", "digits", "--max-restarts=1", "--steps", "5"]
    assert worker_argv(argv) == ["run", "dcgan", "-d", "digits", "--steps", "5"]
    assert worker_argv(["resume", "abc", "--nproc=4"]) == ["resume", "abc"]
    args = torchrun_args(2, 1, argv)
    assert {"--standalone", "--nproc-per-node=2", "--max-restarts=1"} <= set(args)
    # stopped workers get time to checkpoint, and SLURM's SIGUSR1 reaches them
    assert ("--shutdown-timeout=300" in args) == ("--shutdown-timeout" in torchrun_options())
    assert any(a.startswith("--signals-to-handle=") and "SIGUSR1" in a for a in args)
    assert args[-8:] == ["-m", "ganbench", "run", "dcgan", "-d", "digits", "--steps", "5"]
    with pytest.raises(UsageError, match="--nproc must be at least 1"):
        torchrun_args(0, 0, argv)


def test_the_launcher_passes_only_options_this_torchrun_knows(monkeypatch):
    """torch 2.11's torchrun has no --shutdown-timeout: the lent H200's refused the command
    line (exit 2) until the launcher asked the parser what it accepts."""
    from torch.distributed.run import get_args_parser

    argv = ["run", "dcgan", "--nproc", "2", "--steps", "5"]
    parsed = get_args_parser().parse_args(torchrun_args(2, 0, argv))
    assert parsed.nproc_per_node == "2" and parsed.training_script_args[-2:] == ["--steps", "5"]
    older = torchrun_options() - {"--shutdown-timeout", "--shutdown_timeout"}
    monkeypatch.setattr(launcher, "torchrun_options", lambda: older)
    args = torchrun_args(2, 0, argv)
    assert not any(a.startswith("--shutdown-timeout") for a in args)
    assert any(a.startswith("--signals-to-handle=") for a in args)


def test_ranks_read_disjoint_shares_that_make_up_the_global_batch():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 1, 4, 4), dtype=np.uint8)
    data = ImageArray(images, source="test")
    cpu = torch.device("cpu")
    whole = iter(make_batches(data, 8, cpu, seed=5))
    shares = [iter(make_batches(data, 8, cpu, seed=5, shard=(r, 2))) for r in range(2)]
    for _ in range(12):  # more than two epochs: the reshuffle is the same on every rank
        parts = [next(s) for s in shares]
        assert all(p.shape[0] == 4 for p in parts)
        assert torch.equal(torch.cat(parts), next(whole))
        assert not torch.equal(parts[0], parts[1])


def test_a_global_batch_that_does_not_divide_is_refused_with_the_sizes_that_do():
    assert check_global_batch(128, 8) == 16
    with pytest.raises(UsageError, match=r"batch size 130 is the global batch.*128 or 136"):
        check_global_batch(130, 8)


def test_refusals_come_before_any_process_starts(tmp_path):
    cases = [
        (("--nproc", "2", "--batch-size", "15"), "pass --batch-size 14 or 16"),
        (("--nproc", "2", "--device", "cpu", "--set", "sync_bn=true"), "sync_bn=true needs GPUs"),
        (("--device", "cpu", "--set", "sync_bn=true"), "this run has one; start it with --nproc"),
    ]
    for i, (extra, message) in enumerate(cases):
        args = ["run", "dcgan", "--dataset", "digits", "--tracking-uri", "sqlite:///x.db", *extra]
        proc = ganbench(*args, cwd=tmp_path, name=f"e{i}")
        assert finish(proc, 120) == 2
        err = (tmp_path / f"e{i}.err").read_text().strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "x.db").exists()  # nothing started, nothing written


# ---- two ranks under torchrun ---------------------------------------------------------


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """8 steps on 2 gloo ranks started by the ``torchrun`` executable, scored at steps 4
    and 8 with the ranks sharing the samples: (folder, tracking URI, output)."""
    folder = tmp_path_factory.mktemp("ddp")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    args = ["run", *TINY, "--steps", "8", "--set", "log_every=2", "--set", "checkpoint_every=4"]
    args += ["--eval-every", "4", "--eval-samples", "300", "--metrics", "fid,is"]
    args += ["--tracking-uri", uri, "--cache-dir", str(folder / "cache")]
    proc = _torchrun(folder, *args)
    assert finish(proc, 300) == 0, (folder / "tr.err").read_text()[-3000:]
    return folder, uri


def test_two_ranks_make_one_mlflow_run_with_the_group_in_its_params(two_ranks):
    _, uri = two_ranks
    client, run = _only_run(uri)
    assert run.info.status == "FINISHED"
    p = run.data.params
    assert p["batch_size"] == "16"
    assert p["distributed.world_size"] == "2"
    assert p["distributed.backend"] == "gloo"
    assert p["distributed.batch_per_rank"] == "8"
    assert p["distributed.global_batch"] == "16"
    for key in ("loss_d", "loss_g", "d_real", "d_fake", "images_per_sec"):
        steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
        assert steps == [2, 4, 6, 8], (key, steps)


def test_both_ranks_hold_bit_identical_weights(two_ranks):
    """Rank 1's weights have the digest of those rank 0 wrote into the checkpoint: each
    rank computed its own and the run records the digest only when all agree."""
    _, uri = two_ranks
    _, run = _only_run(uri)
    tags = run.data.tags
    assert tags["distributed.replicas"] == "2 ranks hold identical weights at step 8"
    run_dir = Path(tags["ganbench.run_dir"])
    last = checkpoint.load_file(run_dir / "checkpoints" / "step-000000008.pt", FMT)
    assert weights_digest(_nets(last["state"])) == tags["distributed.weights_sha256"]
    mid = checkpoint.load_file(run_dir / "checkpoints" / "step-000000004.pt", FMT)
    assert weights_digest(_nets(mid["state"])) != tags["distributed.weights_sha256"]


def test_scores_shared_by_two_ranks_equal_one_process_scoring_the_checkpoint(two_ranks):
    """The ranks split the samples and rank 0 gathers the features: FID and IS at step 8
    equal what one process computes from the final checkpoint (as ``ganbench eval``
    does), with the training's scoring seed (seed + 3)."""
    from ganbench.metrics.session import make_scorer
    from ganbench.plugins import load_registries
    from ganbench.runs.reopen import load_checkpoint

    folder, uri = two_ranks
    _, run = _only_run(uri)
    registries = load_registries()
    path = Path(run.data.tags["ganbench.run_dir"]) / "checkpoints" / "step-000000008.pt"
    loaded = load_checkpoint(path, registries)

    def scores(seed: int) -> dict[str, float]:
        scorer = make_scorer(
            registries,
            loaded.plan,
            data_root=None,
            cache_dir=str(folder / "cache"),
            metrics="fid,is",
            extractor=None,
            inception_weights=None,
            samples=300,
            real_samples=None,
            device=torch.device("cpu"),
            seed=seed,
            progress=False,
        )
        return scorer.score(loaded.model, "test").scores

    alone, logged = scores(3), run.data.metrics
    assert set(alone) <= set(logged)
    fid = "digits-cnn/fid_300"
    assert alone[fid] == pytest.approx(logged[fid], rel=1e-6)
    assert alone["digits-cnn/is_300"] == pytest.approx(logged["digits-cnn/is_300"], rel=1e-6)
    # another seed's samples score differently: the comparison can fail
    assert scores(4)[fid] != pytest.approx(logged[fid], rel=1e-6)


def test_two_ranks_with_global_batch_2b_equal_one_process_with_batch_2b(tmp_path):
    """With batch norm off the only differences are float32 summation orders: the
    weights after 6 steps agree within 1e-6 (measured: 7.5e-9), while 3 steps of
    training move them by more than 5e-4 (Adam: up to lr = 2e-4 per step). Adam is
    invariant to a constant gradient scale, so the weights check which images and latents
    each rank's gradient comes from (a share dropped, duplicated or misassigned), not
    the averaging factor. The averaging is checked on the logged statistics: each rank's
    losses are means over its half of the batch, and the run logs their mean over the
    ranks, which is the one process's mean over the whole batch; a sum over the ranks (2x),
    or rank 0's half alone, differs."""
    common = ["run", *TINY, *UNSCORED, "--steps", "6", "--set", "batchnorm=false"]
    common += ["--set", "log_every=3"]
    common += ["--set", "checkpoint_every=3"]
    # fp32 (the CPU default is bf16 where the CPU has it): bf16's rounding (3e-4 here)
    # would be larger than what a misassigned share changes
    common += ["--set", "precision=fp32"]
    outs = {}
    for name, extra in (("one", []), ("two", ["--nproc", "2"])):
        uri = f"sqlite:///{tmp_path / (name + '.db')}"
        proc = ganbench(
            *common,
            *extra,
            *("--tracking-uri", uri, "--run-dir", str(tmp_path / name)),
            *("--cache-dir", str(tmp_path / "cache")),
            cwd=tmp_path,
            name=name,
        )
        assert finish(proc, 300) == 0, (tmp_path / f"{name}.err").read_text()[-3000:]
        outs[name] = checkpoint.load_file(
            tmp_path / name / "checkpoints" / "step-000000006.pt", FMT
        )
    one, two = outs["one"]["state"], outs["two"]["state"]
    worst = 0.0
    for net in ("generator", "discriminator"):
        for key, value in one[net].items():
            worst = max(worst, (value - two[net][key]).abs().max().item())
    assert worst < 1e-6, worst
    # and not trivially: training moves the weights much more than that
    mid = checkpoint.load_file(tmp_path / "one" / "checkpoints" / "step-000000003.pt", FMT)
    moved = max(
        (value - mid["state"]["generator"][key]).abs().max().item()
        for key, value in one["generator"].items()
    )
    assert moved > 5e-4, moved
    # the data order and the random state are the same: one checkpoint resumes either
    assert torch.equal(outs["one"]["resume"]["data"]["rng"], outs["two"]["resume"]["data"]["rng"])
    assert torch.equal(outs["one"]["resume"]["rng"]["torch"], outs["two"]["resume"]["rng"]["torch"])
    # The logged statistics (means over the 3 steps of each logging interval) of the two
    # ranks, averaged, are the one process's on the same batches: measured within 7e-8
    # (relative), where the sum over the ranks is 2x and rank 0's half alone is off by
    # 7e-6 to 1.6e-4 (loss_d, d_real).
    logged = {}
    for name in ("one", "two"):
        client, run = _only_run(f"sqlite:///{tmp_path / (name + '.db')}")
        logged[name] = {
            key: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)]
            for key in ("loss_d", "loss_g", "d_real", "d_fake")
        }
    for key, history in logged["one"].items():
        assert [step for step, _ in history] == [3, 6], (key, history)
        assert [step for step, _ in logged["two"][key]] == [3, 6], (key, logged["two"][key])
        for (step, alone), (_, averaged) in zip(history, logged["two"][key], strict=True):
            assert averaged == pytest.approx(alone, rel=1e-6), (key, step, averaged, alone)


def _worker(launcher_pid: int, rank: int) -> int | None:
    """The pid of torchrun's worker of global ``rank``, from its environment."""
    for child in Path(f"/proc/{launcher_pid}/task/{launcher_pid}/children").read_text().split():
        try:
            env = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in env:
            return int(child)
    return None


def test_a_killed_worker_is_restarted_by_torchrun_and_the_run_continues(tmp_path):
    """``kill -9`` of rank 1 after the first checkpoint: torchrun restarts the group, the
    new rank 0 finds this launch's run and resumes it; one FINISHED run, one value per
    (metric, step)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_dir = tmp_path / "run"
    args = ["run", *TINY, *UNSCORED, "--steps", "80", "--set", "log_every=5"]
    args += ["--set", "checkpoint_every=10"]
    args += ["--tracking-uri", uri, "--run-dir", str(run_dir), "--cache-dir", str(tmp_path / "c")]
    proc = _torchrun(tmp_path, *args, restarts=1)
    try:
        ckpts = run_dir / "checkpoints"
        wait_for(
            "the first checkpoint",
            lambda: ckpts.is_dir() and any(ckpts.glob("step-*.pt")),
            240,
            proc,
        )
        victim = _worker(proc.pid, 1)
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        assert finish(proc, 300) == 0, (tmp_path / "tr.err").read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    err = (tmp_path / "tr.err").read_text()
    assert "(restart 1): resuming its run" in err, err[-3000:]
    client, run = _only_run(uri)
    assert run.info.status == "FINISHED"
    assert run.data.tags["ganbench.resumes"] == "1"
    for key in run.data.metrics:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
        assert len(steps) == len(set(steps)), (key, steps)
        if key in ("loss_d", "loss_g", "d_real", "d_fake", "images_per_sec"):
            assert steps == list(range(5, 81, 5)), (key, steps)
    assert time.monotonic() - killed_at < 300


def test_sigterm_to_the_launcher_checkpoints_every_rank_and_one_process_resumes(tmp_path):
    """``ganbench run --nproc 2`` stopped by SIGTERM: torchrun passes it on, the ranks
    agree at the next logging step, rank 0 checkpoints, all exit; the launcher exits 143
    with one line. The checkpoint does not depend on the world size: ``ganbench resume``
    in one process finishes the run, and the resume records the change."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_dir = tmp_path / "run"
    args = ["run", *TINY, *UNSCORED, "--steps", "400", "--set", "log_every=5", "--nproc", "2"]
    args += ["--tracking-uri", uri, "--run-dir", str(run_dir), "--cache-dir", str(tmp_path / "c")]
    proc = ganbench(*args, cwd=tmp_path, name="stopped", start_new_session=True)
    try:
        wait_for("step 20", lambda: 20 in logged_steps(run_dir), 240, proc)
        proc.send_signal(signal.SIGTERM)
        assert finish(proc, 120) == 143, (tmp_path / "stopped.err").read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    err = (tmp_path / "stopped.err").read_text()
    last = [line for line in err.splitlines() if line.strip()][-1]
    assert last.startswith("Error: stopped by SIGTERM"), last
    client, run = _only_run(uri)
    assert run.info.status == "KILLED"
    [(step, _)] = [(s, p) for s, p in RunFolder.open(run_dir).checkpoints()]
    assert step % 5 == 0 and 20 <= step < 400  # agreed at a logging step

    resumed = ganbench(
        *("resume", run.info.run_id, "--tracking-uri", uri, "--no-progress"),
        cwd=tmp_path,
        name="resumed",
    )
    assert finish(resumed, 300) == 0, (tmp_path / "resumed.err").read_text()[-3000:]
    run = client.get_run(run.info.run_id)
    assert run.info.status == "FINISHED"
    assert "one process without torchrun (was 2 processes)" in run.data.tags["ganbench.resume.1"]
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "loss_d")]
    assert steps == list(range(5, 401, 5))


def test_a_failure_on_rank_0_before_training_ends_every_rank_quickly(tmp_path):
    """A dataset that is not there: rank 0 says so in one line, rank 1 leaves with the same
    exit code without waiting for a partner that will never come, and no run exists."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["run", "dcgan", "--dataset", "imagefolder", "--data-root", str(tmp_path / "none")]
    args += ["--nproc", "2", "--tracking-uri", uri, "--cache-dir", str(tmp_path / "c")]
    start = time.monotonic()
    proc = ganbench(*args, cwd=tmp_path, name="missing")
    code = finish(proc, 120)
    err = (tmp_path / "missing.err").read_text()
    assert code != 0
    errors = [line for line in err.splitlines() if line.startswith("Error:")]
    assert str(tmp_path / "none") in errors[0], err[-2000:]
    assert errors[-1].startswith("Error: worker rank"), errors
    assert "Traceback" not in err
    assert time.monotonic() - start < 90
    client = MlflowClient(tracking_uri=uri)
    assert not client.search_runs([e.experiment_id for e in client.search_experiments()])


def test_a_launch_finds_only_a_run_it_can_continue(tmp_path):
    """The run a restarted (or requeued) launch resumes: not a FINISHED one, not one that
    died before its first checkpoint (that one is marked FAILED), the newest with a
    checkpoint otherwise; and nothing from a store that does not exist yet."""
    from ganbench.runs.resume import launch_run
    from ganbench.tracking.store import open_client

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = open_client(uri)
    exp = client.create_experiment("ganbench")

    def make(status: str | None, **tags: str) -> str:
        run = client.create_run(exp, tags={"ganbench.launch": "job-7", **tags})
        if status:
            client.set_terminated(run.info.run_id, status=status)
        return run.info.run_id

    assert launch_run("job-7", tmp_path / "cache", None, "ganbench") is None
    store = lambda: client  # noqa: E731
    make("FINISHED", **{"checkpoint.last_step": "100"})
    assert launch_run("job-7", tmp_path / "cache", store, "ganbench") is None
    early = make(None)
    assert launch_run("job-7", tmp_path / "cache", store, "ganbench") is None
    assert client.get_run(early).info.status == "FAILED"
    killed = make("KILLED", **{"checkpoint.last_step": "40"})
    assert launch_run("job-7", tmp_path / "cache", store, "ganbench") == killed
    assert launch_run("job-8", tmp_path / "cache", store, "ganbench") is None


def test_labelled_shares_carry_their_own_images_classes():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 1, 4, 4), dtype=np.uint8)
    images[:, 0, 0, 0] = np.arange(40)  # each image names itself in its first pixel
    data = ImageArray(images, source="test", labels=np.arange(40) % 7)
    cpu = torch.device("cpu")
    shares = [iter(make_batches(data, 8, cpu, seed=5, shard=(r, 2), labels=True)) for r in range(2)]
    for _ in range(12):
        for share in shares:
            batch, labels = next(share)
            index = torch.round((batch[:, 0, 0, 0] + 1) * 127.5).long()
            assert torch.equal(labels, index % 7)


def test_a_conditional_acgan_with_ema_and_diffaugment_trains_on_two_ranks(tmp_path):
    """DDP around a conditional D called with class_logits, labels sliced per rank, EMA
    on every rank: the runner compares the ranks' weights at each checkpoint and records
    the digest only when they agree."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["run", "resnet", "--dataset", "digits", "--batch-size", "16", "--no-progress"]
    args += ["--steps", "4", "--eval-every", "0", "--set", "checkpoint_every=2"]
    args += ["--set", "g_width=0.125", "--set", "d_width=0.125", "--set", "conditional=acgan"]
    args += ["--set", "ema=0.9", "--set", "diffaugment=translation,cutout"]
    args += ["--tracking-uri", uri, "--cache-dir", str(tmp_path / "cache")]
    proc = _torchrun(tmp_path, *args)
    assert finish(proc, 300) == 0, (tmp_path / "tr.err").read_text()[-3000:]
    _, run = _only_run(uri)
    assert run.data.tags["distributed.replicas"] == "2 ranks hold identical weights at step 4"
    assert run.data.tags["ganbench.generator"] == "ema"
    run_dir = Path(run.data.tags["ganbench.run_dir"])
    last = checkpoint.load_file(run_dir / "checkpoints" / "step-000000004.pt", FMT)
    assert last["ema"]["step"] == 4
    assert "d_class_loss" in run.data.metrics
