"""The DCGAN-backbone family through the command line: `ganbench plugins` lists lsgan,
wgan-gp and sngan from their entry points; a tiny wgan-gp run on digits trains end to end
with 5 real batches a step (the data cursor, epochs counted in images); and each plugin
stopped mid-run and resumed ends bit for bit where the uninterrupted run ends (CPU):
weights, optimizer and spectral-norm state, data cursor, random generators, losses; and
a budget in D steps (``d_steps``) is the same real batches for dcgan and wgan-gp."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient
from processes import finish, ganbench

from ganbench.plugins import load_registries
from ganbench.rundir import checkpoint
from ganbench.testing import state_tensors

FMT = checkpoint.CHECKPOINT_FORMAT
#: 16 px digits (1437 images), narrow networks, every step logged, no sample grids between;
#: one thread (convolutions this small gain nothing from two, and lose much when the cores
#: are busy with other work).
TINY = (
    *("--dataset", "digits", "--resolution", "16", "--set", "ngf=8", "--set", "ndf=8"),
    *("--set", "log_every=1", "--set", "sample_every=1000", "--set", "threads=1"),
    "--no-progress",
)
#: Per plugin: (extra arguments, total steps, stop after this step). A step of wgan-gp takes
#: 5 batches of 32 (44 an epoch): 1 epoch is ceil(44 / 5) = 9 steps, and the resumed part
#: crosses into the next epoch inside its last step. lsgan and sngan take one batch of 256
#: (5 an epoch): the resumed part crosses at step 6.
RUNS = {
    "lsgan": (("--batch-size", "256", "--steps", "6"), 6, 3),
    "wgan-gp": (("--batch-size", "32", "--epochs", "1"), 9, 4),
    "sngan": (("--batch-size", "256", "--steps", "6"), 6, 3),
}


class _StopAt:
    """Stands in for the run's stop signals: SIGTERM "arrives" after step ``step`` (the
    loop asks once per step), so the run checkpoints there and stops as on a real one."""

    def __init__(self, step: int) -> None:
        self.step, self.asked = step, 0

    def __enter__(self) -> _StopAt:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    @property
    def received(self) -> int | None:
        self.asked += 1
        return signal.SIGTERM if self.asked >= self.step else None


def _invoke(folder: Path, *args: str):
    from click.testing import CliRunner

    from ganbench.cli import cli

    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        return CliRunner().invoke(cli, list(args))


def _stop_and_resume(name: str, folder: Path, uri: str) -> tuple[Path, Path]:
    """``name``'s uninterrupted run, and the same run stopped after a few steps then
    continued with `ganbench resume`: (reference run folder, resumed run folder)."""
    extra, steps, stop_after = RUNS[name]
    common = ("run", name, *TINY, *extra, "--tracking-uri", uri)
    common += ("--cache-dir", str(folder / "cache"), "--set", "checkpoint_every=1000")
    ref, run = folder / f"{name}-ref", folder / f"{name}-stopped"
    done = _invoke(folder, *common, "--run-dir", str(ref))
    assert done.exit_code == 0, done.output
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("ganbench.training.launch.StopSignals", lambda: _StopAt(stop_after))
        stopped = _invoke(folder, *common, "--run-dir", str(run))
    assert stopped.exit_code == 128 + signal.SIGTERM, stopped.output
    resumed = _invoke(folder, "resume", str(run), "--no-progress")
    assert resumed.exit_code == 0, resumed.output
    assert f"resumed from step {stop_after} of {steps}" in resumed.output
    # the run's own cache, not GANBENCH_CACHE_DIR (set for the whole test session): the
    # final score reads the reference statistics the uninterrupted run read
    assert f"statistics of digits train at 16px from {folder / 'cache'}" in resumed.output
    return ref, run


@pytest.fixture(scope="module")
def family_runs(tmp_path_factory) -> dict[str, tuple[str, Path, Path]]:
    """Every plugin of RUNS stopped and resumed, in one MLflow store: name -> (tracking
    URI, reference run folder, resumed run folder)."""
    folder = tmp_path_factory.mktemp("family")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    threads = torch.get_num_threads()  # the runs set one; the tests after them get theirs
    try:
        return {name: (uri, *_stop_and_resume(name, folder, uri)) for name in RUNS}
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("name", list(RUNS))
def test_a_stopped_and_resumed_run_ends_bit_for_bit_as_the_uninterrupted_one(family_runs, name):
    _, ref_dir, run_dir = family_runs[name]
    steps, stop_after = RUNS[name][1], RUNS[name][2]
    stopped_at = checkpoint.load_file(run_dir / "checkpoints" / f"step-{stop_after:09d}.pt", FMT)
    assert stopped_at["step"] == stop_after
    final = f"checkpoints/step-{steps:09d}.pt"
    a, b = checkpoint.load_file(ref_dir / final, FMT), checkpoint.load_file(run_dir / final, FMT)
    ta, tb = dict(state_tensors(a["state"])), dict(state_tensors(b["state"]))
    assert ta.keys() == tb.keys() and len(ta) > 30
    unequal = [k for k in ta if not torch.equal(ta[k], tb[k])]
    assert unequal == [], f"{name}: tensors differ after the resume: {unequal[:5]}"
    # the model moved since the stop: equal final states are not the stop's state again
    moved = dict(state_tensors(stopped_at["state"]))
    assert any(not torch.equal(moved[k], ta[k]) for k in ta if k.startswith("/generator"))
    ra, rb = a["resume"], b["resume"]
    assert ra["data"]["epoch"] == rb["data"]["epoch"]
    assert ra["data"]["position"] == rb["data"]["position"]
    assert torch.equal(ra["data"]["rng"], rb["data"]["rng"])
    assert torch.equal(ra["rng"]["torch"], rb["rng"]["torch"])
    for key, history in ra["history"].items():
        if key != "images_per_sec":  # a wall-clock rate
            assert torch.equal(history, rb["history"][key]), (name, key)
    assert len(ra["history"]["loss_d"]) == steps
    ga = checkpoint.load_file(ref_dir / "generator.pt", checkpoint.GENERATOR_FORMAT)
    gb = checkpoint.load_file(run_dir / "generator.pt", checkpoint.GENERATOR_FORMAT)
    assert all(torch.equal(v, gb["state_dict"][k]) for k, v in ga["state_dict"].items())
    if name == "sngan":  # the power iteration's vectors (3 D layers at 16 px) resumed too
        assert sum(k.endswith("._u") for k in ta) == sum(k.endswith("._v") for k in ta) == 3


def test_wgan_gp_trains_end_to_end_on_five_batches_a_step(family_runs):
    uri, ref_dir, _ = family_runs["wgan-gp"]
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    [run] = [r for r in runs if r.data.tags.get("ganbench.run_dir") == str(ref_dir)]
    assert run.info.status == "FINISHED"
    p = run.data.params
    assert (p["architecture"], p["n_critic"], p["gp_weight"], p["d_norm"]) == (
        "wgan-gp",
        "5",
        "10.0",
        "layer",
    )
    assert (p["lr"], p["beta1"], p["beta2"], p["batch_size"]) == ("0.0001", "0.0", "0.9", "32")
    # 1 epoch of 44 batches, 5 batches a step: 9 steps
    assert (p["epochs"], p["total_steps"]) == ("1.0", "9")
    assert {"loss_d", "loss_g", "d_real", "d_fake", "d_penalty", "images_per_sec"} <= set(
        run.data.metrics
    )
    penalty = [m.value for m in client.get_metric_history(run.info.run_id, "d_penalty")]
    assert len(penalty) == 9 and all(v >= 0 for v in penalty)
    # the data cursor moved 45 batches: epoch 0's 44, then 1 batch of epoch 1
    last = checkpoint.load_file(ref_dir / "checkpoints" / "step-000000009.pt", FMT)
    assert (last["resume"]["data"]["epoch"], last["resume"]["data"]["position"]) == (1, 1)


def test_one_batch_a_step_moves_the_cursor_one_batch_a_step(family_runs):
    _, ref_dir, _ = family_runs["lsgan"]
    last = checkpoint.load_file(ref_dir / "checkpoints" / "step-000000006.pt", FMT)
    # 6 batches of 256, 5 an epoch: epoch 1, position 1
    assert (last["resume"]["data"]["epoch"], last["resume"]["data"]["position"]) == (1, 1)


#: Lucic et al.'s budget, counted in D updates: ``--set d_steps=20`` is 20 D updates on 20
#: real batches for every GAN, so 20 G updates for DCGAN (n_critic 1) and 4 for WGAN-GP
#: (n_critic 5). name -> (total steps, real batches per step).
D_STEPS = {"dcgan": (20, 1), "wgan-gp": (4, 5)}


@pytest.fixture(scope="module")
def d_step_runs(tmp_path_factory) -> tuple[str, dict[str, Path]]:
    """A tiny run of each D_STEPS plugin with ``--set d_steps=20`` (batches of 16, no
    scoring); wgan-gp's stopped after 2 steps and resumed. (tracking URI, name -> run
    folder)."""
    folder = tmp_path_factory.mktemp("d-steps")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    threads = torch.get_num_threads()
    dirs = {}
    try:
        for name in D_STEPS:
            dirs[name] = folder / name
            args = ("run", name, *TINY, "--batch-size", "16", "--set", "d_steps=20")
            args += ("--set", "eval_every=0", "--tracking-uri", uri)
            args += ("--cache-dir", str(folder / "cache"), "--run-dir", str(dirs[name]))
            if name == "wgan-gp":
                with pytest.MonkeyPatch.context() as mp:
                    mp.setattr("ganbench.training.launch.StopSignals", lambda: _StopAt(2))
                    stopped = _invoke(folder, *args)
                assert stopped.exit_code == 128 + signal.SIGTERM, stopped.output
                done = _invoke(folder, "resume", str(dirs[name]), "--no-progress")
                assert "resumed from step 2 of 4" in done.output
            else:
                done = _invoke(folder, *args)
            assert done.exit_code == 0, done.output
        return uri, dirs
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("name", list(D_STEPS))
def test_a_budget_in_d_steps_is_the_same_real_batches_for_every_gan(d_step_runs, name):
    uri, dirs = d_step_runs
    steps, n = D_STEPS[name]
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    [run] = [r for r in runs if r.data.tags.get("ganbench.run_dir") == str(dirs[name])]
    assert run.info.status == "FINISHED"
    p = run.data.params
    assert (p["d_steps"], p["steps"], p["epochs"], p["n_critic"]) == ("20", "None", "None", str(n))
    assert (p["total_steps"], p["real_batches_per_step"], p["real_batches"]) == (
        str(steps),
        str(n),
        "20",
    )
    last = checkpoint.load_file(dirs[name] / "checkpoints" / f"step-{steps:09d}.pt", FMT)
    assert last["step"] == steps
    # Adam's step counts: 20 D updates (one per real batch), steps G updates
    counts = {
        opt: {int(s["step"]) for s in last["state"][opt]["state"].values()}
        for opt in ("opt_d", "opt_g")
    }
    assert counts == {"opt_d": {20}, "opt_g": {steps}}
    # the data cursor moved 20 batches of 16 (89 an epoch)
    assert (last["resume"]["data"]["epoch"], last["resume"]["data"]["position"]) == (0, 20)


def test_plugins_lists_the_new_architectures_from_their_entry_points(ganbench_run_cli):
    result = ganbench_run_cli("plugins")
    assert result.exit_code == 0, result.output
    for plugin, package in (("lsgan", "lsgan"), ("wgan-gp", "wgan_gp"), ("sngan", "sngan")):
        assert f"{plugin}  (entry point ganbench_plugins.{package} from ganbench" in result.output
        assert f"    architectures: {plugin}\n" in result.output
    architectures = load_registries().architectures
    for name, arxiv in (
        ("lsgan", "1611.04076"),
        ("wgan-gp", "1704.00028"),
        ("sngan", "1802.05957"),
    ):
        assert f"arXiv {arxiv}" in architectures.get(name).summary
        assert architectures.plugin_of(name) == name


@pytest.mark.slow
def test_wgan_gp_on_two_ranks_equals_one_process_with_the_global_batch(tmp_path):
    """2 gloo ranks (``--nproc 2``) against one process, 4 steps of batch 16 with G's
    batchnorm off (the critic's layer norm is per sample): every rank concatenates its
    own 5 shares, the penalty's interpolation weights are the global batch's sliced per
    rank, and DDP averages gradients that went through the penalty's double backward.
    The weights agree within 1e-6 (measured 6e-8) where 2 steps move G by more than 1e-4
    (measured 3.5e-4), and both end with the same random state and data cursor. About
    55 s on 2 busy cores, mostly process start-up: marked slow."""
    common = ["run", "wgan-gp", *TINY, "--steps", "4", "--batch-size", "16"]
    common += ["--set", "batchnorm=false", "--set", "checkpoint_every=2"]
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
            tmp_path / name / "checkpoints" / "step-000000004.pt", FMT
        )
    one, two = outs["one"], outs["two"]
    worst = max(
        (value - two["state"][net][key]).abs().max().item()
        for net in ("generator", "discriminator")
        for key, value in one["state"][net].items()
    )
    assert worst < 1e-6, worst
    mid = checkpoint.load_file(tmp_path / "one" / "checkpoints" / "step-000000002.pt", FMT)
    moved = max(
        (value - mid["state"]["generator"][key]).abs().max().item()
        for key, value in one["state"]["generator"].items()
    )
    assert moved > 1e-4, moved
    assert torch.equal(one["resume"]["rng"]["torch"], two["resume"]["rng"]["torch"])
    assert one["resume"]["data"]["position"] == two["resume"]["data"]["position"] == 20
