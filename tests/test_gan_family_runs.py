"""The DCGAN-backbone family through the command line: `ganbench plugins` lists lsgan,
wgan-gp and sngan from their entry points; a tiny wgan-gp run on digits trains end to end
with 5 real batches a step (the data cursor, epochs counted in images); and each plugin
stopped mid-run and resumed ends bit for bit where the uninterrupted run ends (CPU):
weights, optimizer and spectral-norm state, data cursor, random generators, losses; and
a budget in D steps (``d_steps``) is the same real batches for dcgan and wgan-gp."""

from __future__ import annotations

import copy
import signal
from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient
from processes import finish, ganbench

from ganbench.plugins import load_registries
from ganbench.plugins.interfaces import ImageShape
from ganbench.rundir import checkpoint
from ganbench.testing import state_tensors
from ganbench_plugins.wgan_gp.config import WGANGPConfig
from ganbench_plugins.wgan_gp.model import WGANGP

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
    logged = {
        key: {m.step: m.value for m in client.get_metric_history(run.info.run_id, key)}
        for key in ("loss_d", "d_real", "d_fake", "d_penalty")
    }
    assert all(sorted(values) == list(range(1, 10)) for values in logged.values()), logged
    # The critic's loss is Algorithm 1's: E[D(G(z))] - E[D(x)] + the penalty, each step's
    # last critic update; the logged penalty is the very term in it (weighted), and it is
    # not zero (a penalty left out of the loss, or logged unweighted, fails). The loss sums
    # in float32, but d_real and d_fake are the means of D's outputs in the autocast dtype
    # (bf16 here: -0.25 at step 1), each rounded within one eps of it (measured: loss_d off
    # by up to 7.4e-4, the penalty 0.28 to 2.1).
    eps = {"bf16": 2**-7, "fp16": 2**-10, "fp32": 0.0}[p["speed.precision"]]
    for step in range(1, 10):
        d_real, d_fake = logged["d_real"][step], logged["d_fake"][step]
        penalty = logged["d_penalty"][step]
        rounding = eps * (abs(d_real) + abs(d_fake)) + 1e-5
        assert logged["loss_d"][step] == pytest.approx(d_fake - d_real + penalty, abs=rounding)
        assert penalty > 0.1, (step, penalty)
    # the data cursor moved 45 batches: epoch 0's 44, then 1 batch of epoch 1
    last = checkpoint.load_file(ref_dir / "checkpoints" / "step-000000009.pt", FMT)
    assert (last["resume"]["data"]["epoch"], last["resume"]["data"]["position"]) == (1, 1)


def test_a_wgan_gp_step_reports_gulrajanis_penalty_on_its_own_interpolates():
    """One critic update of a tiny WGAN-GP: its ``d_penalty`` equals lambda * mean_i
    (||grad_x D(x_i)||_2 - 1)^2 written out with torch.autograd one sample at a time, on
    the critic before the update, at x_i = a_i real_i + (1 - a_i) fake_i with the step's
    own latents and weights a_i (replayed from the same random state)."""
    torch.manual_seed(0)
    model = WGANGP(WGANGPConfig(ngf=8, ndf=8, n_critic=1), ImageShape(1, 16))
    critic = copy.deepcopy(model.discriminator)  # as the update found it
    generator = copy.deepcopy(model.generator)
    real = torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    state = torch.get_rng_state()
    stats = model.train_step(real)
    # What the step drew, in its order: the latents, then the interpolation weights.
    torch.set_rng_state(state)
    z = model.batch_latent(4, "cpu")
    alpha = torch.rand(4)
    with torch.no_grad():
        fake = generator(z)
    terms = []
    for i in range(4):
        x = (alpha[i] * real[i] + (1 - alpha[i]) * fake[i]).unsqueeze(0).requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(x).sum(), x)
        terms.append((grad.norm() - 1) ** 2)
    want = 10.0 * torch.stack(terms).mean()
    assert want.item() > 1.0  # far from 0: the comparison can fail
    assert stats["d_penalty"].item() == pytest.approx(want.item(), rel=1e-5)
    # ... and it is in the critic's loss, on top of E[D(G(z))] - E[D(x)].
    with torch.no_grad():
        wasserstein = critic(fake).mean() - critic(real).mean()
    assert stats["loss_d"].item() == pytest.approx((wasserstein + want).item(), rel=1e-5)
    assert stats["d_fake"].item() - stats["d_real"].item() == pytest.approx(
        wasserstein.item(), abs=1e-6
    )


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


def test_wgan_gp_on_two_ranks_equals_one_process_with_the_global_batch(tmp_path):
    """2 gloo ranks (``--nproc 2``) against one process, 4 steps of batch 16 with G's
    batchnorm off (the critic's layer norm is per sample): every rank concatenates its
    own 5 shares, the penalty's interpolation weights are the global batch's sliced per
    rank, and DDP averages gradients that went through the penalty's double backward.
    The weights agree within 1e-6 (measured 6e-8) where 2 steps move G by more than 1e-4
    (measured 3.5e-4), and both end with the same random state and data cursor. Adam
    does not see a constant gradient factor, so the averaging is checked on the logged
    statistics: the ranks' mean of their own half-batch means (penalty included) is the
    one process's whole-batch mean (measured within 3e-7), where a sum over the ranks is
    twice it. About 25 s on 2 cores (123 s while the cores were busy with other runs)."""
    common = ["run", "wgan-gp", *TINY, "--steps", "4", "--batch-size", "16"]
    common += ["--set", "batchnorm=false", "--set", "checkpoint_every=2"]
    # fp32, as in test_distributed: where the CPU default is bf16 (this machine picks it),
    # bf16's rounding moved the weights apart by 7.8e-4 in 4 steps
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
    logged = {}
    for name in ("one", "two"):
        client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / (name + '.db')}")
        [run] = client.search_runs([e.experiment_id for e in client.search_experiments()])
        logged[name] = {
            key: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)]
            for key in ("loss_d", "loss_g", "d_real", "d_fake", "d_penalty")
        }
    for key, alone in logged["one"].items():
        assert [step for step, _ in alone] == [1, 2, 3, 4], (key, alone)
        assert [step for step, _ in logged["two"][key]] == [1, 2, 3, 4], (key, logged["two"])
        for (step, a), (_, b) in zip(alone, logged["two"][key], strict=True):
            assert b == pytest.approx(a, rel=1e-5, abs=2e-6), (key, step, b, a)
