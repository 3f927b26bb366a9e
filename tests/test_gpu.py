"""CUDA checks, run on purpose on a machine with a GPU: `pytest -m gpu` (tox -e gpu)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from ganbench.data.loading import load_images
from ganbench.plugins import load_registries
from ganbench.tracking import NullTracker
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

    from ganbench.zoo.index import bundled_index, load_index
    from ganbench.zoo.runtime import latents, open_generator

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
