"""GeneratorEMA: the average against a float64 hand-run reference, its start step, buffers,
checkpoint round trip, spectral norm and wrappers."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from ganbench.training.ema import GeneratorEMA, plain_module


def tiny_generator(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(4, 6), torch.nn.BatchNorm1d(6), torch.nn.Tanh(), torch.nn.Linear(6, 3)
    )


def snapshot(module: torch.nn.Module) -> dict[str, np.ndarray]:
    return {name: p.detach().double().numpy().copy() for name, p in module.named_parameters()}


def train_step(generator: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    generator.train()
    optimizer.zero_grad()
    out = generator(torch.randn(8, 4))
    (out**2).mean().backward()
    optimizer.step()


def test_average_by_hand_with_known_numbers() -> None:
    """One parameter set to 1, 2, 3, 4 after steps 1-4; decay 0.5, start 2."""
    generator = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        generator.weight.fill_(7.0)
    ema = GeneratorEMA(generator, decay=0.5, start=2)
    assert ema.module.weight.item() == 7.0 and not ema.started
    expected = [1.0, 1.5, 2.25, 3.125]  # copy; .5*1+.5*2; .5*1.5+.5*3; .5*2.25+.5*4
    for step, want in zip(range(1, 5), expected, strict=True):
        with torch.no_grad():
            generator.weight.fill_(float(step))
        ema.update(generator, step)
        assert ema.module.weight.item() == want
        assert ema.started == (step >= 2)
    assert ema.step == 4


@pytest.mark.parametrize("start", [0, 4])
def test_average_matches_float64_reference(start: int) -> None:
    decay, steps = 0.8, 9
    generator = tiny_generator()
    optimizer = torch.optim.SGD(generator.parameters(), lr=0.3)
    ema = GeneratorEMA(generator, decay=decay, start=start)
    reference = snapshot(generator)  # the copy made at construction
    for step in range(1, steps + 1):
        train_step(generator, optimizer)
        params = snapshot(generator)
        for name in reference:
            if step < start:
                reference[name] = params[name]
            else:
                reference[name] = decay * reference[name] + (1 - decay) * params[name]
        ema.update(generator)  # step defaults to the last + 1
        assert ema.step == step
        averaged = snapshot(ema.module)
        for name, want in reference.items():
            np.testing.assert_allclose(
                averaged[name], want, rtol=1e-6, atol=1e-7, err_msg=f"{name} step {step}"
            )
        # the last update before start is an exact copy of the live parameters
        if step < start:
            for name, want in params.items():
                assert np.array_equal(averaged[name], want)
    # the average differs from the live weights once it has started
    assert not np.allclose(snapshot(ema.module)["0.weight"], snapshot(generator)["0.weight"])


def test_buffers_are_copied_and_module_is_frozen_in_eval() -> None:
    generator = tiny_generator()
    optimizer = torch.optim.SGD(generator.parameters(), lr=0.1)
    ema = GeneratorEMA(generator, decay=0.9)
    for _ in range(3):
        train_step(generator, optimizer)
        ema.update(generator)
    live_bn, ema_bn = generator[1], ema.module[1]
    assert torch.equal(ema_bn.running_mean, live_bn.running_mean)
    assert torch.equal(ema_bn.running_var, live_bn.running_var)
    assert int(ema_bn.num_batches_tracked) == 3 == int(live_bn.num_batches_tracked)
    assert ema_bn.running_mean.data_ptr() != live_bn.running_mean.data_ptr()
    assert not ema.module.training
    assert all(not p.requires_grad and p.grad is None for p in ema.module.parameters())
    assert all(
        a.data_ptr() != b.data_ptr()
        for a, b in zip(ema.module.parameters(), generator.parameters(), strict=True)
    )
    # eval mode: sampling does not touch the copied running statistics
    before = ema_bn.running_mean.clone()
    ema.module(torch.randn(5, 4))
    assert torch.equal(ema_bn.running_mean, before)


def test_state_dict_round_trip_continues_bit_exactly() -> None:
    generator = tiny_generator()
    optimizer = torch.optim.SGD(generator.parameters(), lr=0.2)
    uninterrupted = GeneratorEMA(generator, decay=0.7, start=3)
    for _ in range(4):
        train_step(generator, optimizer)
        uninterrupted.update(generator)
    buffer = io.BytesIO()
    torch.save(uninterrupted.state_dict(), buffer)
    buffer.seek(0)
    restored = GeneratorEMA(tiny_generator(seed=5), decay=0.7, start=3)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert restored.step == 4 and restored.started
    for _ in range(3):
        train_step(generator, optimizer)
        uninterrupted.update(generator)
        restored.update(generator)
    assert restored.step == uninterrupted.step == 7
    want, got = uninterrupted.module.state_dict(), restored.module.state_dict()
    assert want.keys() == got.keys()
    assert all(torch.equal(want[key], got[key]) for key in want)


def test_restored_before_start_keeps_copying() -> None:
    generator = tiny_generator()
    ema = GeneratorEMA(generator, decay=0.5, start=10)
    ema.update(generator, 2)
    restored = GeneratorEMA(generator, decay=0.5, start=10)
    restored.load_state_dict(ema.state_dict())
    assert restored.step == 2 and not restored.started


@pytest.mark.parametrize("style", ["parametrization", "hook"])
def test_spectral_norm_generator(style: str) -> None:
    torch.manual_seed(1)
    linear = torch.nn.Linear(5, 4)
    if style == "parametrization":
        generator = torch.nn.utils.parametrizations.spectral_norm(linear)
        raw = "parametrizations.weight.original"
        u_name, v_name = "parametrizations.weight.0._u", "parametrizations.weight.0._v"
    else:
        generator = torch.nn.utils.spectral_norm(linear)
        raw, u_name, v_name = "weight_orig", "weight_u", "weight_v"
    optimizer = torch.optim.SGD(generator.parameters(), lr=0.5)
    decay = 0.6
    ema = GeneratorEMA(generator, decay=decay)
    reference = snapshot(generator)
    for _ in range(4):
        generator.train()
        optimizer.zero_grad()
        generator(torch.randn(6, 5)).pow(2).sum().backward()
        optimizer.step()
        ema.update(generator)
        live = snapshot(generator)
        reference = {k: decay * reference[k] + (1 - decay) * live[k] for k in reference}
    averaged = snapshot(ema.module)
    assert set(averaged) == {raw, "bias"}
    for name in reference:
        np.testing.assert_allclose(averaged[name], reference[name], rtol=1e-6, atol=1e-7)
    live_buffers, ema_buffers = dict(generator.named_buffers()), dict(ema.module.named_buffers())
    assert torch.equal(ema_buffers[u_name], live_buffers[u_name])
    assert torch.equal(ema_buffers[v_name], live_buffers[v_name])
    # eval mode: W_avg / (u^T W_avg v) with the copied u, v, no power iteration
    w = reference[raw]
    u, v = live_buffers[u_name].double().numpy(), live_buffers[v_name].double().numpy()
    w_sn = w / (u @ w @ v)
    x = torch.randn(3, 5)
    want = x.double().numpy() @ w_sn.T + reference["bias"]
    np.testing.assert_allclose(ema.module(x).double().numpy(), want, rtol=1e-5, atol=1e-6)
    assert torch.equal(ema_buffers[u_name], live_buffers[u_name])  # sampling left u alone


def test_compiled_wrapper_averages_the_plain_module() -> None:
    generator = tiny_generator()
    compiled = torch.compile(generator)  # lazy: nothing is compiled until called
    assert plain_module(compiled) is generator
    via_wrapper = GeneratorEMA(compiled, decay=0.5)
    via_plain = GeneratorEMA(generator, decay=0.5)
    assert type(via_wrapper.module) is torch.nn.Sequential
    with torch.no_grad():
        for p in generator.parameters():
            p.add_(1.0)
    via_wrapper.update(compiled)
    via_plain.update(generator)
    want, got = via_plain.module.state_dict(), via_wrapper.module.state_dict()
    assert want.keys() == got.keys()
    assert all(torch.equal(want[key], got[key]) for key in want)


def test_rejects_a_different_generator_and_bad_decay() -> None:
    ema = GeneratorEMA(tiny_generator(), decay=0.9)
    with pytest.raises(ValueError, match="same generator"):
        ema.update(torch.nn.Linear(4, 3))
    with pytest.raises(ValueError, match="decay"):
        GeneratorEMA(tiny_generator(), decay=1.5)
