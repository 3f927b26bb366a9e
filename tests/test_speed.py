"""The fast path computes the same function as the plain one (fresh random inputs, stated
tolerances), and every switch is resolved, applied and logged."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from conftest import TINY_RUN
from mlflow import MlflowClient

from ganbench.interfaces import ImageShape, Speed
from ganbench.plugins import load_registries
from ganbench.training.speed import resolve_speed

CPU = torch.device("cpu")


def _model(speed: Speed | None, seed: int = 0, resolution: int = 32):
    arch = load_registries().architectures.get("dcgan")
    torch.manual_seed(seed)
    model = arch.build(arch.config_class(), ImageShape(3, resolution))
    if speed is not None:
        model.accelerate(speed)
    return model


def _train(model, batches, speed: Speed | None, seed: int = 1):
    torch.manual_seed(seed)  # the same latents for both paths
    fmt = speed.memory_format if speed else torch.contiguous_format
    return [
        {k: float(v) for k, v in model.train_step(b.contiguous(memory_format=fmt)).items()}
        for b in batches
    ]


def _params(model) -> dict[str, torch.Tensor]:
    named = {}
    for net in ("generator", "discriminator"):
        for k, v in getattr(model, net).state_dict().items():
            named[f"{net}.{k}"] = v.float()
    return named


def test_cpu_defaults_resolve_as_measured():
    speed = resolve_speed(CPU)
    assert (speed.channels_last, speed.autocast, speed.adam, speed.compile) == (
        True,
        None,
        "fused",
        False,
    )
    assert speed.params()["speed.precision"] == "fp32"
    plain = resolve_speed(CPU, channels_last="off", adam="plain", precision="fp32", threads=1)
    assert (plain.channels_last, plain.adam) == (False, "plain")
    assert torch.get_num_threads() == 1
    assert resolve_speed(CPU, precision="bf16").autocast == torch.bfloat16
    resolve_speed(CPU)  # back to one thread per core


def _loss_and_grads(G, D, z, real):
    logit_real, logit_fake = D(real), D(G(z))
    loss = F.binary_cross_entropy_with_logits(
        logit_real, torch.ones_like(logit_real)
    ) + F.binary_cross_entropy_with_logits(logit_fake, torch.zeros_like(logit_fake))
    loss.backward()
    nets = {"G": G, "D": D}
    return loss.item(), {
        f"{n}.{k}": p.grad.clone() for n, net in nets.items() for k, p in net.named_parameters()
    }


@pytest.mark.parametrize("resolution", [32, 64])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_channels_last_networks_compute_the_same_losses_and_gradients(resolution, seed):
    """Fresh random weights, latents and images: the NHWC networks give the same loss (rel
    1e-5; measured ~1e-7) and the same gradients. Gradients are compared by direction and
    size (cosine >= 0.999, norms within 1%), not elementwise: ReLU's derivative jumps at 0,
    so a pre-activation within ~1e-7 of zero can fall on the other side when sums run in
    another order, and batch norm then spreads that one element over its channel (measured
    over 40 cases: elementwise up to 6% of the largest gradient, cosine >= 0.99993; a
    float64 reference shows both float32 layouts equally far from the exact values
    elsewhere)."""
    torch.manual_seed(seed)
    model = _model(None, seed=seed, resolution=resolution)
    G, D = model.generator, model.discriminator
    G_cl = copy.deepcopy(G).to(memory_format=torch.channels_last)
    D_cl = copy.deepcopy(D).to(memory_format=torch.channels_last)
    z, real = torch.rand(16, 100) * 2 - 1, torch.rand(16, 3, resolution, resolution) * 2 - 1
    loss, grads = _loss_and_grads(G, D, z, real)
    loss_cl, grads_cl = _loss_and_grads(
        G_cl, D_cl, z, real.contiguous(memory_format=torch.channels_last)
    )
    assert loss_cl == pytest.approx(loss, rel=1e-5)
    for k, g in grads.items():
        g_cl = grads_cl[k]
        assert F.cosine_similarity(g.flatten(), g_cl.flatten(), dim=0) >= 0.999, k
        assert g_cl.norm() == pytest.approx(g.norm().item(), rel=1e-2), k


@pytest.mark.parametrize("kind", ["fused", "foreach"])
def test_fast_adam_takes_the_same_steps(kind):
    """Fused and foreach Adam against the per-parameter loop, 5 steps on the same gradients."""
    torch.manual_seed(3)
    params = [torch.randn(64, 32), torch.randn(7), torch.randn(3, 3, 4, 4)]
    plain = [p.clone().requires_grad_() for p in params]
    fast = [p.clone().requires_grad_() for p in params]
    opt_plain = torch.optim.Adam(plain, lr=2e-4, betas=(0.5, 0.999), foreach=False)
    opt_fast = torch.optim.Adam(fast, lr=2e-4, betas=(0.5, 0.999), **{kind: True})
    for _ in range(5):
        grads = [torch.randn_like(p) for p in params]
        for ps, opt in ((plain, opt_plain), (fast, opt_fast)):
            for p, g in zip(ps, grads, strict=True):
                p.grad = g.clone()
            opt.step()
    for a, b in zip(fast, plain, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-7)


def test_fast_path_losses_follow_the_plain_path():
    """End to end, 3 steps of the full fast path against the plain one from the same weights,
    batches and latents: the losses agree to 1e-3. (Weights are not compared elementwise:
    Adam's first steps move each weight by +-lr whatever its gradient's size, so a gradient
    that is ~0 can flip sign on the last bit and move its weight the other way.)"""
    torch.manual_seed(123)
    batches = [torch.rand(16, 3, 32, 32) * 2 - 1 for _ in range(3)]
    fast, plain = resolve_speed(CPU), Speed(CPU, adam="plain")
    a, b = _model(fast), _model(plain)
    for x, y in zip(_train(a, batches, fast), _train(b, batches, plain), strict=True):
        for k in x:
            assert x[k] == pytest.approx(y[k], rel=1e-3), k
    assert a.generator.net[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert a.opt_d.param_groups[0]["fused"] is True


def test_bf16_autocast_step_stays_close_to_fp32():
    """bf16 keeps 8 bits of mantissa: the first step's losses agree to a few percent."""
    torch.manual_seed(5)
    batch = [torch.rand(16, 3, 32, 32) * 2 - 1]
    bf16 = Speed(CPU, autocast=torch.bfloat16)
    [low] = _train(_model(bf16), batch, bf16)
    [full] = _train(_model(Speed(CPU)), batch, Speed(CPU))
    for k in ("loss_d", "loss_g", "d_real", "d_fake"):
        assert low[k] == pytest.approx(full[k], rel=0.05), k


def test_fp16_autocast_uses_a_gradient_scaler():
    fp16 = Speed(CPU, autocast=torch.float16)
    model = _model(fp16)
    assert model._scaler.is_enabled()
    torch.manual_seed(0)
    [stats] = _train(model, [torch.rand(8, 3, 32, 32) * 2 - 1], fp16)
    assert all(torch.isfinite(torch.tensor(v)) for v in stats.values())


@pytest.mark.slow
def test_compiled_networks_compute_the_same_step():
    """torch.compile on the CPU (about 25 s to compile): the same losses, same state-dict keys."""
    torch.manual_seed(9)
    batches = [torch.rand(16, 3, 32, 32) * 2 - 1 for _ in range(2)]
    compiled, eager = Speed(CPU, compile=True), Speed(CPU)
    a, b = _model(compiled), _model(eager)
    for x, y in zip(_train(a, batches, compiled), _train(b, batches, eager), strict=True):
        for k in x:
            assert x[k] == pytest.approx(y[k], rel=1e-3), k
    assert not any(k.startswith("_orig_mod") for k in a.state_dict()["generator"])


def test_run_logs_requested_and_resolved_switches(run_cli, tmp_path):
    result = run_cli("run", "dcgan", "--dataset", "digits", *TINY_RUN, "--set", "adam=foreach")
    assert result.exit_code == 0, result.output
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    [run] = client.search_runs([e.experiment_id for e in client.search_experiments()])
    p = run.data.params
    assert p["adam"] == "foreach" and p["speed.adam"] == "foreach"
    assert p["channels_last"] == "auto" and p["speed.channels_last"] == "True"
    assert p["precision"] == "auto" and p["speed.precision"] == "fp32"
    assert p["speed.compile"] == "False" and int(p["speed.threads"]) >= 1


def test_unknown_switch_value_is_a_usage_error(run_cli):
    result = run_cli("run", "dcgan", "--dataset", "digits", *TINY_RUN, "--set", "precision=fp8")
    assert result.exit_code == 2 and "precision must be one of" in result.output


def test_batches_come_in_the_fast_paths_layout_with_the_same_values():
    import numpy as np

    from ganbench.interfaces import ImageArray
    from ganbench.training.data import make_batches

    images = np.random.default_rng(0).integers(0, 256, (32, 3, 8, 8), dtype=np.uint8)
    plain = next(iter(make_batches(ImageArray(images), 8, CPU, 0)))
    fast = next(iter(make_batches(ImageArray(images), 8, CPU, 0, torch.channels_last)))
    assert fast.is_contiguous(memory_format=torch.channels_last) and fast.dtype == torch.float32
    assert not plain.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(fast, plain, rtol=0, atol=0)
