"""CUDA checks, run on purpose on a machine with a GPU: `pytest -m gpu` (tox -e gpu)."""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path

import pytest
import torch

from ganbench.data.loading import load_images
from ganbench.plugins import load_registries
from ganbench.tracking.tracker import NullTracker
from ganbench.training.augment import diff_augment
from ganbench.training.plan import plan_run
from ganbench.training.runner import train
from ganbench_plugins.dcgan.config import DCGANConfig
from ganbench_plugins.dcgan.networks import Discriminator, Generator

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_networks_compute_the_same_function_on_cuda():
    torch.manual_seed(0)
    config = DCGANConfig()
    G, D = Generator(config, 3, 64).eval(), Discriminator(config, 3, 64).eval()
    z = torch.rand(16, 100) * 2 - 1
    with torch.no_grad():
        x_cpu, d_cpu = G(z), D(G(z))
        x_gpu = copy.deepcopy(G).cuda()(z.cuda())
        d_gpu = copy.deepcopy(D).cuda()(x_gpu)
    # TF32 may be on for convolutions: tolerances for ~1e-3 relative matmul error.
    torch.testing.assert_close(x_gpu.cpu(), x_cpu, atol=5e-3, rtol=5e-3)
    torch.testing.assert_close(d_gpu.cpu(), d_cpu, atol=5e-2, rtol=5e-2)


def test_a_short_run_trains_on_cuda():
    plan = plan_run(load_registries(), "dcgan", "digits", [("test", {"steps": 20, "log_every": 5})])
    tracker = NullTracker()
    data = load_images(plan.dataset, plan.request(), Path("/nonexistent"))
    result = train(plan, data, tracker, torch.device("cuda"), show_progress=False)
    assert result.steps == 20 and tracker.status == "FINISHED"
    assert [s for s, _ in tracker.metrics["loss_d"]] == [5, 10, 15, 20]
    assert tracker.params["device"] == "cuda"


def test_shipped_zoo_generator_runs_on_the_cuda_provider():
    """onnxruntime-gpu on a GPU machine: the CUDA provider starts (no silent CPU fallback)
    and draws the CPU provider's images."""
    import numpy as np
    import onnxruntime

    from ganbench.zoo.index import bundled_index, load_index
    from ganbench.zoo.runtime import latents, open_generator

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        # The lent H200 carries the CPU-only onnxruntime, and onnxruntime-gpu's wheel
        # (~250 MB) is too big to carry there; ganbench's refusal of --provider cuda on
        # such a machine is tested in test_zoo_runtime.
        pytest.skip("onnxruntime-gpu is not installed here (the CPU-only package is)")
    index = load_index(bundled_index(), Path("unused"))
    path = Path(index.resolve(index.get("dcgan-digits-32").url))
    said: list[str] = []
    gpu = open_generator(path, "cuda", say=said.append)
    cpu = open_generator(path, "cpu", say=said.append)
    assert gpu.provider == "CUDAExecutionProvider" and said == []
    z = latents(gpu.info, 64, 0)
    np.testing.assert_allclose(gpu.generate(z), cpu.generate(z), atol=5e-3)


def test_ddp_on_every_gpu_with_sync_bn_trains_one_run(tmp_path):
    """``--nproc`` over the machine's GPUs (NCCL), SyncBatchNorm on: one MLflow run whose
    params record the group, replicas with identical weights at the end."""
    import subprocess
    import sys

    from mlflow import MlflowClient

    gpus = torch.cuda.device_count()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ganbench = str(Path(sys.executable).with_name("ganbench"))
    args = [ganbench, "run", "dcgan", "--dataset", "digits", "--steps", "20"]
    args += ["--batch-size", str(64 * gpus), "--nproc", str(gpus), "--set", "sync_bn=true"]
    args += ["--set", "log_every=5", "--no-progress", "--tracking-uri", uri]
    done = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    client = MlflowClient(tracking_uri=uri)
    [run] = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert run.data.params["distributed.backend"] == "nccl"
    assert run.data.params["distributed.world_size"] == str(gpus)
    assert run.data.params["sync_bn"] == "True"
    assert run.data.tags["distributed.replicas"].startswith(f"{gpus} ranks hold identical")


def test_analyses_on_cuda_equal_the_cpu(zoo_run, tmp_path):
    """Memorisation's chunked distances and guided backprop on the GPU give the CPU's
    numbers (float tolerance), so the paper-scale searches can run there."""
    import json

    from click.testing import CliRunner

    from ganbench.cli import cli

    _, uri, run_id = zoo_run
    found = {}
    for device in ("cpu", "cuda"):
        for name, extra in [
            ("memorisation", ["--samples", "200", "--held-out", "200", "--chunk", "300"]),
            ("guided-backprop", ["--images", "4", "--features", "2"]),
        ]:
            out = tmp_path / device / name
            args = ["analyze", run_id, name, *extra, "--device", device, "--out", str(out)]
            result = CliRunner().invoke(cli, [*args, "--tracking-uri", uri, "--no-progress"])
            assert result.exit_code == 0, result.output
            found[device, name] = json.loads((out / "result.json").read_text())["metrics"]
    for name in ("memorisation", "guided-backprop"):
        cpu, cuda = found["cpu", name], found["cuda", name]
        assert cpu.keys() == cuda.keys()
        for key in cpu:
            assert cuda[key] == pytest.approx(cpu[key], rel=1e-3, abs=1e-4), (name, key)


# ---- the captured step (ganbench.training.graphs) --------------------------------------
CAPTURE_STEPS = 50


@contextlib.contextmanager
def _deterministic():
    """cuDNN's deterministic algorithms: two runs of the same kernels give the same bits
    (the default ones may accumulate with atomics in any order)."""
    before = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before


#: Conditional steps through the core's adversarial step (labels in the graph's static
#: buffers, DiffAugment's draws from the captured default generator, ACGAN's class term,
#: a conditional gradient penalty): (architecture, config, DiffAugment policy).
CAPTURED_VARIANTS = {
    "resnet-projection": (
        "resnet",
        {"conditional": "projection", "g_width": 0.25, "d_width": 0.25, "n_critic": 2},
        "color,translation,cutout",
    ),
    "resnet-acgan-gp": (
        "resnet",
        {
            **{"conditional": "acgan", "loss": "wasserstein", "gp_weight": 10.0},
            **{"spectral_norm": False, "g_width": 0.25, "d_width": 0.25, "n_critic": 1},
        },
        "",
    ),
}


def _train_steps(name: str, precision: str, graphs: bool, steps: int = CAPTURE_STEPS):
    """``steps`` steps of ``name`` at 32 px from seed 0 on fixed random batches: (model,
    its step callable, the statistics' sums over the steps)."""
    from ganbench.plugins.interfaces import ImageShape
    from ganbench.training.graphs import make_step
    from ganbench.training.speed import resolve_speed
    from ganbench.training.statistics import StepStatistics

    cuda = torch.device("cuda")
    torch.manual_seed(0)
    arch_name, overrides, policy = CAPTURED_VARIANTS.get(name, (name, {}, ""))
    arch = load_registries().architectures.get(arch_name)
    classes = 10 if overrides.get("conditional", "none") != "none" else 0
    model = arch.build(arch.config_class(**overrides), ImageShape(3, 32, classes))
    model.augment = diff_augment(policy)
    speed = resolve_speed(cuda, precision=precision, graphs="on" if graphs else "off")
    model.to(cuda)
    model.accelerate(speed)
    statistics = StepStatistics(cuda)
    failed: list[str] = []
    step = make_step(model, statistics, speed.graphs, failed.append)
    data = torch.Generator(device=cuda).manual_seed(1)  # not the default generator
    n = model.real_batches_per_step
    for _ in range(steps):
        real = torch.rand(n * 64, 3, 32, 32, generator=data, device=cuda) * 2 - 1
        labels = None
        if model.num_classes:  # the real images' classes, static buffers in the graph
            labels = torch.randint(model.num_classes, (n * 64,), generator=data, device=cuda)
        step(real.contiguous(memory_format=speed.memory_format), labels)
    assert failed == []
    keys, means = statistics.take()
    return model, step, dict(zip(keys, (means * steps).tolist(), strict=True))


@pytest.mark.parametrize(
    ("name", "precision"),
    [("dcgan", "bf16"), ("lsgan", "bf16"), ("wgan-gp", "bf16"), ("sngan", "bf16"),
     ("dcgan", "fp16"), ("wgan-gp", "fp16"),
     ("resnet-projection", "bf16"), ("resnet-acgan-gp", "bf16")],
)  # fmt: skip
def test_captured_steps_equal_eager_steps(name, precision):
    """50 steps replayed from one CUDA graph train the networks the eager steps train
    (bf16 tolerance; fp16 through the GradScaler's capturable unscale and update), and
    the statistics summed on the device equal the eager steps' sums."""
    from ganbench.testing import state_tensors

    with _deterministic():
        captured, step, sums = _train_steps(name, precision, graphs=True)
        eager, _, eager_sums = _train_steps(name, precision, graphs=False)
    assert step.captured and step.captures == 1
    worst = {}
    for part in ("generator", "discriminator", "opt_g", "opt_d"):
        a = dict(state_tensors(captured.state_dict()[part]))
        b = dict(state_tensors(eager.state_dict()[part]))
        assert a.keys() == b.keys()
        for key in a:
            x, y = a[key].double(), b[key].double()
            if "step" in key or not x.is_floating_point():
                assert torch.equal(x, y), (part, key)
            elif y.norm() > 0:
                worst[part] = max(worst.get(part, 0.0), float((x - y).norm() / y.norm()))
    print(f"{name} {precision}: worst relative differences {worst}")
    # the networks' parameters and buffers; Adam's moments are printed, not bounded (a
    # second moment near zero magnifies any rounding)
    assert worst["generator"] < 1e-2 and worst["discriminator"] < 1e-2
    assert sums.keys() == eager_sums.keys()
    for key in sums:
        assert sums[key] == pytest.approx(eager_sums[key], rel=1e-2, abs=1e-3), key


def test_a_resumed_captured_run_continues_bit_exactly(tmp_path):
    """A captured run stopped at step 20 and resumed from its checkpoint (the resumed
    process captures anew after loading the state) ends with the uninterrupted captured
    run's weights, bit for bit, and logs the same statistics."""
    from ganbench.rundir import checkpoint
    from ganbench.rundir.folder import RunFolder
    from ganbench.testing import state_tensors
    from ganbench.training.checkpointing import Resume

    settings = {"steps": 40, "log_every": 5, "checkpoint_every": 20, "sample_every": 1000}
    plan = plan_run(load_registries(), "dcgan", "digits", [("test", settings)])
    data = load_images(plan.dataset, plan.request(), Path("/nonexistent"))
    cuda = torch.device("cuda")
    with _deterministic():
        whole = NullTracker()
        (tmp_path / "whole").mkdir()
        (tmp_path / "resumed").mkdir()
        folder = RunFolder(tmp_path / "whole", {"run_id": "whole"})
        train(plan, data, whole, cuda, show_progress=False, folder=folder)
        assert whole.params["speed.graphs"] == "True"
        assert "ganbench.graphs_fallback" not in whole.tags
        at_20 = checkpoint.load_file(
            folder.checkpoint_dir / "step-000000020.pt", checkpoint.CHECKPOINT_FORMAT
        )
        resumed = NullTracker()
        again = RunFolder(tmp_path / "resumed", {"run_id": "resumed"})
        resume = Resume(at_20, folder.checkpoint_dir / "step-000000020.pt", 1, {})
        train(plan, data, resumed, cuda, show_progress=False, folder=again, resume=resume)
    ends = [
        checkpoint.load_file(f.checkpoint_dir / "step-000000040.pt", checkpoint.CHECKPOINT_FORMAT)
        for f in (folder, again)
    ]
    # weights, optimizer states, random generators, data cursor (not the history, which
    # holds wall-clock rates)
    a, b = ({**dict(state_tensors(e["state"])), **dict(state_tensors(e["resume"]["rng"]))}
            for e in ends)  # fmt: skip
    assert a.keys() == b.keys() and len(a) > 40
    assert ends[0]["resume"]["data"]["position"] == ends[1]["resume"]["data"]["position"]
    unequal = [k for k in a if not torch.equal(a[k], b[k])]
    assert unequal == [], unequal[:5]
    for key in ("loss_d", "loss_g", "d_real", "d_fake"):
        after = [(s, v) for s, v in whole.metrics[key] if s > 20]
        assert resumed.metrics[key] == after, key


def test_a_new_batch_shape_captures_again():
    """Batches of 64, then 32, then 64 again: each new shape warms up once and captures
    anew, and the run equals an eager one bit for bit. (Written 2026-12-04 after the
    device time was spent: first run on the next lent device.)"""
    from ganbench.plugins.interfaces import ImageShape
    from ganbench.testing import state_tensors
    from ganbench.training.graphs import make_step
    from ganbench.training.speed import resolve_speed
    from ganbench.training.statistics import StepStatistics

    cuda = torch.device("cuda")
    sizes = [64] * 5 + [32] * 5 + [64] * 2
    results = []
    with _deterministic():
        for graphs in (True, False):
            torch.manual_seed(0)
            arch = load_registries().architectures.get("dcgan")
            model = arch.build(arch.config_class(), ImageShape(3, 32))
            speed = resolve_speed(cuda, graphs="on" if graphs else "off")
            model.to(cuda)
            model.accelerate(speed)
            statistics = StepStatistics(cuda)
            step = make_step(model, statistics, speed.graphs, pytest.fail)
            data = torch.Generator(device=cuda).manual_seed(1)
            for n in sizes:
                real = torch.rand(n, 3, 32, 32, generator=data, device=cuda) * 2 - 1
                step(real.contiguous(memory_format=speed.memory_format))
            assert statistics.count == len(sizes)
            results.append((step, dict(state_tensors(model.state_dict()))))
    (captured, a), (_, b) = results
    assert captured.captures == 3
    assert [k for k in a if not torch.equal(a[k], b[k])] == []


def test_a_step_that_cannot_be_captured_falls_back_to_eager_and_says_why():
    """A step that reads a loss back to the host cannot be captured: the capture fails
    once, the reason is reported, and training goes on eagerly. Its first run on the lent H200
    found the failed capture leaving torch's generator registered (release_generators)."""
    from ganbench.plugins.interfaces import ImageShape
    from ganbench.training.graphs import make_step
    from ganbench.training.speed import resolve_speed
    from ganbench.training.statistics import StepStatistics
    from ganbench_plugins.dcgan.model import DCGAN

    class Syncs(DCGAN):
        def d_loss(self, out_real, out_fake):
            loss = super().d_loss(out_real, out_fake)
            self.last = loss.item()  # a host sync: not allowed while capturing
            return loss

    cuda = torch.device("cuda")
    torch.manual_seed(0)
    model = Syncs(DCGANConfig(), ImageShape(3, 32))
    speed = resolve_speed(cuda, graphs="on")
    model.to(cuda)
    model.accelerate(speed)
    statistics = StepStatistics(cuda)
    reasons: list[str] = []
    step = make_step(model, statistics, speed.graphs, reasons.append)
    before = model.generator.net[0].weight.detach().clone()
    for _ in range(8):
        step(torch.rand(64, 3, 32, 32, device=cuda) * 2 - 1)
    assert len(reasons) == 1 and reasons[0]
    assert not step.captured and step.failed == reasons[0]
    assert statistics.count == 8
    _, means = statistics.take()
    assert torch.isfinite(means).all()
    assert not torch.equal(before, model.generator.net[0].weight)  # it trained
