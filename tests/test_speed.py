"""The fast path computes the same function as the plain one (fresh random inputs, stated
tolerances), and every switch is resolved, applied and logged."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from conftest import TINY_RUN
from mlflow import MlflowClient
from torch.profiler import ProfilerActivity, profile

from ganbench.plugins import load_registries
from ganbench.plugins.interfaces import ImageShape, Speed
from ganbench.training.speed import cpu_has_native_bf16, resolve_speed

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
    native = cpu_has_native_bf16()
    assert (speed.channels_last, speed.autocast, speed.adam, speed.compile) == (
        True,
        torch.bfloat16 if native else None,
        "fused",
        False,
    )
    assert speed.params()["speed.precision"] == ("bf16" if native else "fp32")
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


def _adam_kernels(run) -> set[str]:
    """The Adam kernels (ATen ops) that ``run()`` calls, as torch's profiler records them."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    names = {e.key for e in prof.key_averages()}
    return {n for n in names if n == "aten::_fused_adam_" or n.startswith("aten::_foreach_")}


@pytest.mark.parametrize("kind", ["fused", "foreach"])
def test_fast_adam_takes_the_same_steps(kind):
    """ganbench's DCGAN set up with ``Speed(adam=kind)`` steps with that Adam kernel (the
    profiler sees the fused kernel or the foreach ops, the plain loop neither), in
    ``train_step`` too, and takes the plain loop's steps: 5 steps on the same random
    gradients, weights within 1 ulp (measured: fused 1.2e-7 on weights near 1, foreach
    0; each weight moved ~1e-3)."""
    plain, fast = _model(Speed(CPU, adam="plain")), _model(Speed(CPU, adam=kind))
    for opt in (fast.opt_g, fast.opt_d):
        assert opt.param_groups[0][kind] is True
    torch.manual_seed(3)
    start = {k: v.clone() for k, v in _params(plain).items()}
    kernels = {}
    for step in range(5):
        for net in ("generator", "discriminator"):
            pairs = zip(
                getattr(plain, net).parameters(), getattr(fast, net).parameters(), strict=True
            )
            for p, q in pairs:
                p.grad = torch.randn_like(p)
                q.grad = p.grad.clone()
        for name, model in (("plain", plain), ("fast", fast)):
            both = lambda m=model: (m.opt_g.step(), m.opt_d.step())  # noqa: E731
            if step == 0:  # the profiler is slow; every step runs the same kernels
                kernels[name] = _adam_kernels(both)
            else:
                both()
    assert kernels["plain"] == set()
    if kind == "fused":
        assert kernels["fast"] == {"aten::_fused_adam_", "aten::_foreach_add_"}  # + step count
    else:
        assert "aten::_foreach_addcdiv_" in kernels["fast"]
        assert "aten::_fused_adam_" not in kernels["fast"]
    after_plain, after_fast = _params(plain), _params(fast)
    for k, v in after_plain.items():
        torch.testing.assert_close(after_fast[k], v, rtol=1e-6, atol=1e-7, msg=k)
    moved = max((after_plain[k] - start[k]).abs().max().item() for k in start)
    assert moved > 5e-4  # lr 2e-4, 5 steps: far above the tolerance
    torch.manual_seed(0)
    batch = torch.rand(8, 3, 32, 32) * 2 - 1
    assert _adam_kernels(lambda: fast.train_step(batch)) == kernels["fast"]


def test_fast_path_losses_follow_the_plain_path():
    """End to end, 3 steps of the fp32 fast path against the plain one from the same weights,
    batches and latents: the losses agree to 1e-3. (Weights are not compared elementwise:
    Adam's first steps move each weight by +-lr whatever its gradient's size, so a gradient
    that is ~0 can flip sign on the last bit and move its weight the other way.)"""
    torch.manual_seed(123)
    batches = [torch.rand(16, 3, 32, 32) * 2 - 1 for _ in range(3)]
    fast, plain = resolve_speed(CPU, precision="fp32"), Speed(CPU, adam="plain")
    a, b = _model(fast), _model(plain)
    for x, y in zip(_train(a, batches, fast), _train(b, batches, plain), strict=True):
        for k in x:
            assert x[k] == pytest.approx(y[k], rel=1e-3), k
    assert a.generator.net[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert a.opt_d.param_groups[0]["fused"] is True


CONVS = (torch.nn.Conv2d, torch.nn.ConvTranspose2d)


def _step_inside(model, batch: torch.Tensor, speed: Speed, seed: int) -> dict:
    """One ganbench ``train_step``, watched from inside by forward hooks: the dtypes every
    convolution gave, G's input z and output image (its first call: the D step's fake)."""
    seen: dict = {"dtypes": set()}

    def conv(module, args, out) -> None:
        seen["dtypes"].add(out.dtype)

    def generator(module, args, out) -> None:
        if "fake" not in seen:
            seen["z"], seen["fake"] = args[0].detach().clone(), out.detach().float().clone()

    nets = (model.generator, model.discriminator)
    hooks = [
        m.register_forward_hook(conv) for n in nets for m in n.modules() if isinstance(m, CONVS)
    ]
    hooks.append(model.generator.register_forward_hook(generator))
    try:
        [seen["stats"]] = _train(model, [batch], speed, seed=seed)
    finally:
        for h in hooks:
            h.remove()
    return seen


def _bf16_by_hand(G: torch.nn.Module, z: torch.Tensor) -> torch.Tensor:
    """G(z) in float32 with bfloat16 imitated by rounding: the convolutions' weights and
    inputs, and every layer's output (autocast runs convolutions on bf16 and gives bf16;
    batch norm, ReLU and Tanh then take and give bf16)."""

    def bf16(t: torch.Tensor) -> torch.Tensor:
        return t.to(torch.bfloat16).float()

    hooks = []
    for m in G.modules():
        if isinstance(m, CONVS):
            with torch.no_grad():
                m.weight.copy_(bf16(m.weight))
            hooks.append(m.register_forward_pre_hook(lambda module, args: (bf16(args[0]),)))
        if not list(m.children()):
            hooks.append(m.register_forward_hook(lambda module, args, out: bf16(out)))
    try:
        with torch.no_grad():
            return G(z)
    finally:
        for h in hooks:
            h.remove()


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize("seed", [0, 1])
def test_bf16_autocast_step_computes_in_bf16(seed):
    """Inside ganbench's bf16 step every convolution gives bf16 (fp32 without autocast);
    G's image is farther from the fp32 step's than 3e-3 (relative L2; measured 5.3e-3 to
    6.6e-3 over 5 seeds: an autocast that did nothing gives 0) and within 1.5e-3 of bf16
    imitated by hand in float32 (measured 1e-5 to 7.8e-4; an fp16 step's image is 5.4e-3
    to 6.7e-3 from it). The losses stay within 1% of fp32's (measured 1.7e-3)."""
    torch.manual_seed(seed)
    batch = torch.rand(16, 3, 32, 32) * 2 - 1
    bf16 = Speed(CPU, autocast=torch.bfloat16)
    low = _step_inside(_model(bf16, seed=seed), batch, bf16, seed)
    full = _step_inside(_model(Speed(CPU), seed=seed), batch, Speed(CPU), seed)
    assert low["dtypes"] == {torch.bfloat16} and full["dtypes"] == {torch.float32}
    torch.testing.assert_close(low["z"], full["z"], rtol=0, atol=0)
    by_hand = _bf16_by_hand(_model(None, seed=seed).generator, low["z"])  # same weights
    assert _relative(low["fake"], full["fake"]) > 3e-3
    if cpu_has_native_bf16():
        # oneDNN's native bf16 kernels (AVX512-BF16/AMX) round inputs and accumulate in
        # fp32, as imitated; CPUs without them emulate bf16 differently (measured 5.8e-3
        # and 7.3e-3 on 2 AMD EPYC cores without AVX512-BF16), and ganbench's automatic
        # precision picks fp32 there.
        assert _relative(low["fake"], by_hand) < 1.5e-3
    for k in ("loss_d", "loss_g", "d_real", "d_fake"):
        assert low["stats"][k] == pytest.approx(full["stats"][k], rel=1e-2), k


def _weights(model) -> dict[str, torch.Tensor]:
    """Copies of both networks' parameters (not the batch-norm buffers every forward moves)."""
    nets = ("generator", "discriminator")
    return {
        f"{n}.{k}": p.detach().clone()
        for n in nets
        for k, p in getattr(model, n).named_parameters()
    }


def _moved(before: dict[str, torch.Tensor], model) -> set[str]:
    """Which networks' weights differ from ``before`` (from :func:`_weights`)."""
    after = _weights(model)
    return {k.split(".")[0] for k, v in before.items() if not torch.equal(after[k], v)}


def _fp16_step(model, batch: torch.Tensor, speed: Speed, seed: int) -> tuple:
    """One fp16 ``train_step`` and what a working gradient scaler must do in it; returns
    (scale before, scale after, which networks moved)."""
    scale, before = model.state_dict()["scaler"]["scale"], _weights(model)
    backward: dict[int, torch.Tensor] = {}  # G's gradients as backward gives them
    hooks = [
        p.register_hook(lambda g, k=k: backward.__setitem__(k, g.detach().clone()))
        for k, p in enumerate(model.generator.parameters())
    ]
    try:
        seen = _step_inside(model, batch, speed, seed)
    finally:
        for h in hooks:
            h.remove()
    assert seen["dtypes"] == {torch.float16}
    new_scale, moved = model.state_dict()["scaler"]["scale"], _moved(before, model)
    grads = [p.grad for p in model.generator.parameters()]
    if "generator" in moved:  # G stepped with finite gradients, exactly unscaled
        for k, g in enumerate(grads):
            assert torch.isfinite(g).all(), k
            torch.testing.assert_close(backward[k], g * scale, rtol=0, atol=0)
    else:  # G's step was skipped: because its gradients overflowed
        assert not all(torch.isfinite(g).all() for g in grads)
    if new_scale == scale:  # no overflow: both took their step
        assert moved == {"generator", "discriminator"}
    else:  # an overflow: the scale halves and the overflowing network stays
        assert new_scale == scale / 2 and moved != {"generator", "discriminator"}
    return scale, new_scale, moved


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_fp16_autocast_scales_the_loss_and_skips_overflowing_steps(device):
    """ganbench's fp16 step: convolutions give fp16; the gradients backward produces are
    the loss scale (2^16 at first) times those the optimizer steps with; a step whose
    gradients overflow is skipped (its weights stay) and halves the scale. Steps run until
    one goes through (CPU, measured: the first two overflow by themselves, scale 2^16 ->
    2^14); then a batch with one pixel of 1e5, beyond fp16's 65504, makes D's loss inf:
    D must not move, where the same step without that pixel moves it. Narrow networks (16
    channels): fp16 convolutions are slow on the CPU."""
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    dev = torch.device(device)
    arch = load_registries().architectures.get("dcgan")
    torch.manual_seed(0)
    model = arch.build(arch.config_class(ngf=16, ndf=16), ImageShape(3, 32)).to(dev)
    fp16 = Speed(dev, autocast=torch.float16)
    model.accelerate(fp16)
    assert model.state_dict()["scaler"]["scale"] == 2.0**16
    batches = [torch.rand(8, 3, 32, 32, device=dev) * 2 - 1 for _ in range(10)]
    history = []
    for i, batch in enumerate(batches[:8]):
        history.append(_fp16_step(model, batch, fp16, i))
        if history[-1][0] == history[-1][1]:
            break
    assert history[-1][0] == history[-1][1], history  # some step went through

    clean, poisoned = batches[8], batches[8].clone()
    poisoned[0, 0, 0, 0] = 1e5
    control = copy.deepcopy(model)
    scale, new_scale, moved = _fp16_step(control, clean, fp16, 8)
    assert new_scale == scale and moved == {"generator", "discriminator"}
    scale, new_scale, moved = _fp16_step(model, poisoned, fp16, 8)
    assert new_scale == scale / 2 and "discriminator" not in moved
    scale, new_scale, moved = _fp16_step(model, batches[9], fp16, 9)
    assert new_scale == scale and moved == {"generator", "discriminator"}


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


def test_run_logs_requested_and_resolved_switches(ganbench_run_cli, tmp_path):
    result = ganbench_run_cli(
        "run", "dcgan", "--dataset", "digits", *TINY_RUN, "--set", "adam=foreach"
    )
    assert result.exit_code == 0, result.output
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    [run] = client.search_runs([e.experiment_id for e in client.search_experiments()])
    p = run.data.params
    assert p["adam"] == "foreach" and p["speed.adam"] == "foreach"
    assert p["channels_last"] == "auto" and p["speed.channels_last"] == "True"
    native = "bf16" if cpu_has_native_bf16() else "fp32"
    assert p["precision"] == "auto" and p["speed.precision"] == native
    assert p["speed.compile"] == "False" and int(p["speed.threads"]) >= 1


def test_compile_is_refused_on_the_cpu_with_the_measured_reason(ganbench_run_cli):
    result = ganbench_run_cli(
        "run", "dcgan", "--dataset", "digits", *TINY_RUN, "--set", "compile=on"
    )
    assert result.exit_code == 2
    assert "compile=on does not pay on the CPU" in result.output
    assert "use compile=off" in result.output


def test_cpu_bf16_rule_reads_the_cpu():
    """bf16 by default only where the CPU multiplies bf16 in hardware; the kernel's flags
    and torch's own capability list agree."""
    from pathlib import Path

    flags = Path("/proc/cpuinfo").read_text().split()
    assert cpu_has_native_bf16() == ("avx512_bf16" in flags or "amx_bf16" in flags)


def test_unknown_switch_value_is_a_usage_error(ganbench_run_cli):
    result = ganbench_run_cli(
        "run", "dcgan", "--dataset", "digits", *TINY_RUN, "--set", "precision=fp8"
    )
    assert result.exit_code == 2 and "precision must be one of" in result.output


def test_batches_come_in_the_fast_paths_layout_with_the_same_values():
    import numpy as np

    from ganbench.plugins.interfaces import ImageArray
    from ganbench.training.data import make_batches

    images = np.random.default_rng(0).integers(0, 256, (32, 3, 8, 8), dtype=np.uint8)
    plain = next(iter(make_batches(ImageArray(images), 8, CPU, 0)))
    fast = next(iter(make_batches(ImageArray(images), 8, CPU, 0, torch.channels_last)))
    assert fast.is_contiguous(memory_format=torch.channels_last) and fast.dtype == torch.float32
    assert not plain.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(fast, plain, rtol=0, atol=0)
