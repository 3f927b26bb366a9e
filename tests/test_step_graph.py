"""The training step as one graph, checked on the CPU: every family's step is traced whole
by ``torch.compile(fullgraph=True)`` (no graph break, no host sync) and computes what
the eager step computes; a host sync is caught; G's update computes no D weight
gradient; the statistics read once per log interval are the per-step values' means;
where CUDA graphs are off, the run says why. The captures themselves run in
tests/test_gpu.py on a CUDA device."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ganbench.data.loading import load_images
from ganbench.plugins import load_registries
from ganbench.plugins.interfaces import ImageShape, Speed
from ganbench.testing import state_tensors, trace_step_whole
from ganbench.tracking.tracker import NullTracker
from ganbench.training.graphs import EagerStep, graphs_unavailable
from ganbench.training.plan import plan_run
from ganbench.training.runner import train
from ganbench.training.speed import resolve_speed
from ganbench.training.statistics import StepStatistics
from ganbench_plugins.dcgan.model import DCGAN

CPU = torch.device("cpu")
FAMILIES = ("dcgan", "lsgan", "wgan-gp", "sngan")


def _model(name: str, adam: str = "foreach", seed: int = 0, **config):
    """A small model on the CPU's fast path in fp32 (traced autocast regions may round
    differently from eager ones; the comparisons here are about the step's structure)."""
    torch.manual_seed(seed)
    arch = load_registries().architectures.get(name)
    model = arch.build(arch.config_class(ngf=8, ndf=8, **config), ImageShape(1, 16))
    model.to(CPU)
    model.accelerate(resolve_speed(CPU, adam=adam, precision="fp32", threads=1))
    return model


def _batches(model, count: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    n = model.real_batches_per_step
    return [
        (torch.rand(n * 16, 1, 16, 16, generator=gen) * 2 - 1).contiguous(
            memory_format=torch.channels_last
        )
        for _ in range(count)
    ]


@pytest.mark.parametrize("name", FAMILIES)
def test_every_family_step_is_traced_whole_and_computes_the_eager_step(name):
    """fullgraph=True fails on any graph break, and a host sync (``.item()``, a Python
    branch on a tensor's value) is one: the step a CUDA graph captures has neither. The
    traced steps (torch's functional Adam on the optimizer's state) train the networks
    as the eager steps do."""
    traced, eager = _model(name), _model(name)
    batches = _batches(traced, 3)
    torch.manual_seed(5)
    traced.train_step(batches[0])  # Adam's state exists before tracing, as after a warm-up
    traced_stats = []
    for real in batches[1:]:
        stats, host_reads = trace_step_whole(traced, real)
        assert host_reads == []
        traced_stats.append(stats)
    torch.manual_seed(5)
    eager_stats = [eager.train_step(b) for b in batches]
    a, b = dict(state_tensors(traced.state_dict())), dict(state_tensors(eager.state_dict()))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)
    assert int(a["/opt_g/state/0/step"]) == 3  # three Adam steps, two of them traced
    for t, e in zip(traced_stats, eager_stats[1:], strict=True):
        assert t.keys() == e.keys()
        for key in t:
            torch.testing.assert_close(t[key], e[key], rtol=1e-5, atol=1e-6)


class _Syncs(DCGAN):
    """A step that reads a loss back to the host: what no captured step may do."""

    def d_loss(self, out_real, out_fake):
        loss = super().d_loss(out_real, out_fake)
        self.last = loss.item()  # a host sync
        return loss


def test_a_step_that_syncs_with_the_host_does_not_trace_whole():
    torch.manual_seed(0)
    arch = load_registries().architectures.get("dcgan")
    model = _Syncs(arch.config_class(ngf=8, ndf=8), ImageShape(1, 16))
    model.accelerate(resolve_speed(CPU, adam="foreach", precision="fp32", threads=1))
    real = _batches(model, 1)[0]
    model.train_step(real)
    _, host_reads = trace_step_whole(model, real)
    assert len(host_reads) == 1 and "item" in host_reads[0]


@pytest.mark.parametrize("name", ["dcgan", "wgan-gp"])
def test_g_updates_compute_no_discriminator_weight_gradient(name):
    """D's weights get a gradient from D's updates only (one per critic step): the
    weight-gradient convolutions of D that G's backward used to run are gone."""
    model = _model(name)
    computed = []
    weight = model.discriminator.head.weight if hasattr(model.discriminator, "head") else None
    weight = weight if weight is not None else list(model.discriminator.parameters())[-1]
    weight.register_hook(lambda grad: computed.append(grad.shape))
    model.train_step(_batches(model, 1)[0])
    assert len(computed) == model.real_batches_per_step
    # and G did learn: its gradient reached every G parameter
    assert all(p.grad is not None for p in model.generator.parameters())


def test_statistics_sum_on_the_device_and_read_as_means():
    model = _model("dcgan")
    twin = _model("dcgan")
    statistics = StepStatistics(CPU)
    step = EagerStep(model, statistics)
    per_step = []
    for real in _batches(model, 4):
        torch.manual_seed(len(per_step))
        step(real)
        torch.manual_seed(len(per_step))
        per_step.append({k: float(v) for k, v in twin.train_step(real).items()})
    keys, means = statistics.take()
    assert statistics.count == 0 and float(statistics.sums.abs().sum()) == 0
    assert keys == ("loss_d", "loss_g", "d_real", "d_fake")
    for key, mean in zip(keys, means.tolist(), strict=True):
        assert mean == pytest.approx(sum(s[key] for s in per_step) / 4, rel=1e-12)
    with pytest.raises(RuntimeError, match="no step"):
        statistics.take()


def test_a_run_logs_each_statistic_as_its_mean_over_the_log_interval():
    """The same run logged every step and every 5 steps: the value at step 5 is the mean
    of steps 1-5 (logging reads the device, it does not change the training)."""
    logged = {}
    for every in (1, 5):
        settings = {"steps": 10, "log_every": every, "resolution": 16, "threads": 1}
        plan = plan_run(
            load_registries(), "dcgan", "digits", [("test", settings), ("x", {"ngf": 8})]
        )
        tracker = NullTracker()
        data = load_images(plan.dataset, plan.request(), Path("/nonexistent"))
        train(plan, data, tracker, CPU, show_progress=False)
        logged[every] = tracker
    for key in ("loss_d", "loss_g", "d_real", "d_fake"):
        each = dict(logged[1].metrics[key])
        for step, value in logged[5].metrics[key]:
            mean = sum(each[s] for s in range(step - 4, step + 1)) / 5
            assert value == pytest.approx(mean, rel=1e-6), (key, step)
    assert logged[5].params["speed.graphs"] == "False"
    assert logged[5].params["speed.graphs_off"] == "CUDA graphs need a CUDA device, not cpu"


def test_where_cuda_graphs_are_off_the_reason_is_given():
    assert resolve_speed(CPU, threads=1).graphs is False
    on_cuda = Speed(torch.device("cuda"), graphs=True)
    assert on_cuda.params()["speed.graphs"] == "True"
    # resolving for CUDA needs no GPU when the precision is given
    cuda = torch.device("cuda")
    compiled = resolve_speed(cuda, compile="on", graphs="on", precision="fp32", threads=1)
    assert not compiled.graphs and compiled.graphs_off.startswith("compile=on")
    assert not compiled.channels_last  # pytorch#171622: inductor's channels_last backward
    assert resolve_speed(cuda, graphs="off", precision="fp32").graphs_off == "graphs=off"
    assert resolve_speed(cuda, precision="fp32").graphs
    model = _model("dcgan")
    assert graphs_unavailable(model, distributed=False) is None
    assert "distributed" in graphs_unavailable(model, distributed=True)

    class Unsure(DCGAN):
        graph_safe_step = False

    unsure = Unsure.__new__(Unsure)
    assert "does not declare its step graph-safe" in graphs_unavailable(unsure, False)


def test_graphs_make_the_optimizers_capturable():
    model = _model("dcgan")
    model.accelerate(Speed(CPU, adam="fused", graphs=True))
    for opt in (model.opt_g, model.opt_d):
        assert all(g["capturable"] and g["fused"] for g in opt.param_groups)
