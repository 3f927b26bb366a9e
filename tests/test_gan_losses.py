"""The DCGAN-backbone family (lsgan, wgan-gp, sngan): each loss against a hand computation,
the gradient penalty against autograd written out (fp32, fp16 with a scaler, bf16,
compiled D), spectral normalisation's singular values, n_critic D updates per G update
each on its own real batch, the critic's normalisation, and the configs' paper defaults."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from ganbench.errors import ConfigError
from ganbench.plugins import load_registries
from ganbench.plugins.interfaces import ImageShape, Speed
from ganbench.training import losses
from ganbench.training.penalties import gradient_penalty
from ganbench_plugins.dcgan.config import DCGANConfig
from ganbench_plugins.dcgan.networks import Discriminator

CPU = torch.device("cpu")
#: D's raw outputs on 3 real and 3 generated images, and their hand-computed losses.
REAL = [2.0, -1.0, 0.5]
FAKE = [-0.5, 1.5, 0.0]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Networks this small gain nothing from a second thread, and lose much when the cores
    are busy with other work; the thread count is put back afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def _arch(name: str):
    return load_registries().architectures.get(name)


def _model(name: str, resolution: int = 16, seed: int = 0, **config):
    arch = _arch(name)
    torch.manual_seed(seed)
    return arch.build(arch.config_class(ngf=8, ndf=8, **config), ImageShape(1, resolution))


def _t(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


# ---- losses --------------------------------------------------------------------------------


def test_least_squares_losses_by_hand():
    # 0-1 coding (a=0, b=c=1): 1/2 mean((D(x)-1)^2) + 1/2 mean(D(G(z))^2); G: 1/2 mean((D-1)^2)
    d01 = 0.5 * _mean((r - 1) ** 2 for r in REAL) + 0.5 * _mean(f**2 for f in FAKE)
    g01 = 0.5 * _mean((f - 1) ** 2 for f in FAKE)
    assert d01 == pytest.approx((5.25 / 3) * 0.5 + (2.5 / 3) * 0.5)  # the lists, by hand
    assert losses.least_squares_d(_t(REAL), _t(FAKE), 0.0, 1.0).item() == pytest.approx(d01)
    assert losses.least_squares_g(_t(FAKE), 1.0).item() == pytest.approx(g01)
    # chi^2 coding (a=-1, b=1, c=0)
    dchi = 0.5 * _mean((r - 1) ** 2 for r in REAL) + 0.5 * _mean((f + 1) ** 2 for f in FAKE)
    assert losses.least_squares_d(_t(REAL), _t(FAKE), -1.0, 1.0).item() == pytest.approx(dchi)
    assert losses.least_squares_g(_t(FAKE), 0.0).item() == pytest.approx(
        0.5 * _mean(f**2 for f in FAKE)
    )
    # the plugin's model uses its config's coding
    model = _model("lsgan", a=-1.0, b=1.0, c=0.0)
    assert model.d_loss(_t(REAL), _t(FAKE)).item() == pytest.approx(dchi)
    assert model.g_loss(_t(FAKE)).item() == pytest.approx(0.5 * _mean(f**2 for f in FAKE))
    assert _model("lsgan").d_loss(_t(REAL), _t(FAKE)).item() == pytest.approx(d01)


def test_wasserstein_losses_by_hand():
    d = _mean(FAKE) - _mean(REAL)  # E[D(G(z))] - E[D(x)] = 1/3 - 1/2
    assert d == pytest.approx(-1 / 6)
    assert losses.wasserstein_d(_t(REAL), _t(FAKE)).item() == pytest.approx(d)
    assert losses.wasserstein_g(_t(FAKE)).item() == pytest.approx(-1 / 3)
    model = _model("wgan-gp")
    assert model.d_loss(_t(REAL), _t(FAKE)).item() == pytest.approx(d)
    assert model.g_loss(_t(FAKE)).item() == pytest.approx(-1 / 3)


def test_hinge_losses_by_hand():
    # mean(max(0, 1 - [2, -1, .5])) = (0 + 2 + .5)/3; mean(max(0, 1 + [-.5, 1.5, 0])) = 4/3
    d = _mean(max(0.0, 1 - r) for r in REAL) + _mean(max(0.0, 1 + f) for f in FAKE)
    assert d == pytest.approx(2.5 / 3 + 4 / 3)
    assert losses.hinge_d(_t(REAL), _t(FAKE)).item() == pytest.approx(d)
    assert losses.hinge_g(_t(FAKE)).item() == pytest.approx(-1 / 3)
    model = _model("sngan")
    assert model.d_loss(_t(REAL), _t(FAKE)).item() == pytest.approx(d)
    assert model.g_loss(_t(FAKE)).item() == pytest.approx(-1 / 3)


def test_cross_entropy_losses_by_hand_and_dcgan_keeps_them():
    def log_sigmoid(v: float) -> float:
        return -math.log1p(math.exp(-v))

    d = -_mean(log_sigmoid(r) for r in REAL) - _mean(log_sigmoid(-f) for f in FAKE)
    non_saturating = -_mean(log_sigmoid(f) for f in FAKE)
    minimax = _mean(log_sigmoid(-f) for f in FAKE)  # log(1 - D(G(z)))
    assert losses.bce_d(_t(REAL), _t(FAKE)).item() == pytest.approx(d, rel=1e-6)
    assert losses.non_saturating_g(_t(FAKE)).item() == pytest.approx(non_saturating, rel=1e-6)
    assert losses.minimax_g(_t(FAKE)).item() == pytest.approx(minimax, rel=1e-6)
    assert _model("dcgan").d_loss(_t(REAL), _t(FAKE)).item() == pytest.approx(d, rel=1e-6)
    assert _model("dcgan", loss="minimax").g_loss(_t(FAKE)).item() == pytest.approx(minimax)
    # SNGAN's "standard" objective is DCGAN's
    standard = _model("sngan", loss="non_saturating")
    assert standard.d_loss(_t(REAL), _t(FAKE)).item() == pytest.approx(d, rel=1e-6)
    assert standard.g_loss(_t(FAKE)).item() == pytest.approx(non_saturating, rel=1e-6)


# ---- the gradient penalty ----------------------------------------------------------------


def _tiny_critic() -> nn.Module:
    """A per-sample critic with fixed weights: conv, LeakyReLU, layer norm, linear."""
    torch.manual_seed(5)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1),
        nn.LeakyReLU(0.2),
        nn.GroupNorm(1, 3),
        nn.Flatten(),
        nn.Linear(3 * 4 * 4, 1),
    )


def _weights_of(D: nn.Module) -> list[nn.Parameter]:
    """The parameters the penalty depends on (the last bias shifts D, not its gradient)."""
    return [p for name, p in D.named_parameters() if name != "4.bias"]


def _written_out(D: nn.Module, real, fake, alpha, weight: float = 10.0) -> torch.Tensor:
    """Gulrajani et al.'s penalty one sample at a time, with autograd by hand."""
    terms = []
    for i in range(real.shape[0]):
        x = (alpha[i] * real[i] + (1 - alpha[i]) * fake[i]).unsqueeze(0).requires_grad_(True)
        (g,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)
        terms.append((g.pow(2).sum().sqrt() - 1) ** 2)
    return weight * torch.stack(terms).mean()


@pytest.fixture
def penalty_inputs():
    gen = torch.Generator().manual_seed(11)
    real = torch.rand(4, 1, 4, 4, generator=gen) * 2 - 1
    fake = torch.rand(4, 1, 4, 4, generator=gen) * 2 - 1
    alpha = torch.tensor([0.1, 0.5, 0.9, 0.3])
    return real, fake, alpha


def test_gradient_penalty_equals_autograd_written_out(penalty_inputs):
    """The value, and D's parameter gradients through it (the double backward D trains
    on); a penalty that scaled the gradient by the batch size, or dropped the -1, fails."""
    real, fake, alpha = penalty_inputs
    D = _tiny_critic()
    got = gradient_penalty(D, real, fake, weight=10.0, alpha=alpha)
    want = _written_out(D, real, fake, alpha)
    assert want.item() > 1.0  # far from 0: the comparison means something
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    g_got = torch.autograd.grad(got, _weights_of(D))
    g_want = torch.autograd.grad(want, _weights_of(D))
    for a, b in zip(g_got, g_want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    # channels_last inputs (the fast path's layout) give the same penalty
    cl = gradient_penalty(
        D,
        real.contiguous(memory_format=torch.channels_last),
        fake.contiguous(memory_format=torch.channels_last),
        weight=10.0,
        alpha=alpha,
    )
    assert cl.item() == pytest.approx(want.item(), rel=1e-5)


def test_gradient_penalty_draws_its_weights_from_the_global_generator(penalty_inputs):
    """Seeded, the weights are torch.rand's next N (the generator a checkpoint saves);
    rank r of a 2-rank group takes its slice of the global batch's 2N draws."""
    real, fake, _ = penalty_inputs
    D = _tiny_critic()
    torch.manual_seed(3)
    drawn = torch.rand(8)
    torch.manual_seed(3)
    got = gradient_penalty(D, real, fake, weight=10.0)
    assert got.item() == pytest.approx(_written_out(D, real, fake, drawn[:4]).item(), rel=1e-5)
    after_one = torch.rand(1)
    torch.manual_seed(3)
    rank1 = gradient_penalty(D, real, fake, weight=10.0, shard=(1, 2))
    assert rank1.item() == pytest.approx(_written_out(D, real, fake, drawn[4:]).item(), rel=1e-5)
    torch.manual_seed(3)
    torch.rand(4)
    assert torch.equal(torch.rand(1), after_one)  # it drew exactly N numbers


@pytest.mark.parametrize("init_scale", [2.0**4, 2.0**12])
def test_gradient_penalty_under_fp16_autocast_and_a_gradient_scaler(penalty_inputs, init_scale):
    """The gradient is taken of the scaled output and unscaled before the norm: the
    penalty is fp32's within fp16's precision whatever the scale (without the unscaling
    it would be off by the scale), and D's gradients come out scaled, as the scaler's
    step expects."""
    real, fake, alpha = penalty_inputs
    D = _tiny_critic()
    want = _written_out(D, real, fake, alpha)
    scaler = torch.amp.GradScaler("cpu", init_scale=init_scale)
    got = gradient_penalty(
        D,
        real,
        fake,
        weight=10.0,
        scaler=scaler,
        autocast_ctx=torch.autocast("cpu", torch.float16),
        alpha=alpha,
    )
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(want.item(), rel=2e-2)
    g16 = torch.autograd.grad(scaler.scale(got), _weights_of(D))
    g32 = torch.autograd.grad(want, _weights_of(D))
    for a, b in zip(g16, g32, strict=True):
        torch.testing.assert_close(a / init_scale, b, rtol=5e-2, atol=5e-3)


def test_gradient_penalty_under_bf16_autocast(penalty_inputs):
    real, fake, alpha = penalty_inputs
    D = _tiny_critic()
    seen = []
    hook = D[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    got = gradient_penalty(
        D, real, fake, weight=10.0, autocast_ctx=torch.autocast("cpu", torch.bfloat16), alpha=alpha
    )
    hook.remove()
    assert seen == [torch.bfloat16]  # the forward ran in bf16
    assert got.item() == pytest.approx(_written_out(D, real, fake, alpha).item(), rel=5e-2)


def test_gradient_penalty_runs_a_compiled_critic_eagerly(penalty_inputs):
    """AOTAutograd cannot differentiate twice: a torch.compile'd D is unwrapped (nothing
    is compiled, so this takes no compile time) and gives the eager penalty exactly."""
    real, fake, alpha = penalty_inputs
    D = _tiny_critic()
    compiled = torch.compile(D)
    got = gradient_penalty(compiled, real, fake, weight=10.0, alpha=alpha)
    assert torch.equal(got, gradient_penalty(D, real, fake, weight=10.0, alpha=alpha))


# ---- the networks: spectral norm, the critic's normalisation -----------------------------


def _sigma_max(module: nn.Module) -> float:
    W = module.weight.detach()
    return torch.linalg.svdvals(W.reshape(W.shape[0], -1))[0].item()


def test_spectral_norm_makes_every_d_layer_1_lipschitz():
    """After a few power iterations (training-mode forwards) the largest singular value
    of every D layer's normalised weight (out x -1) is 1 within 1% (measured: 2e-3 after
    10 forwards); the same layers unnormalised, at DCGAN's init, are 0.1 to 0.5."""
    model = _model("sngan", resolution=32)
    D = model.discriminator
    layers = [m for m in D.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(layers) == 4 and all(parametrize.is_parametrized(m, "weight") for m in layers)
    u0 = [m.parametrizations.weight[0]._u.clone() for m in layers]
    x = torch.rand(8, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        for _ in range(5):
            D(x)
    D.eval()  # reading .weight in eval mode runs no further iteration
    sigmas = [_sigma_max(m) for m in layers]
    assert all(abs(s - 1) < 1e-2 for s in sigmas), sigmas
    # the power iteration moved u (it is state, and the checkpoints hold it)
    assert any(
        not torch.equal(a, m.parametrizations.weight[0]._u) for a, m in zip(u0, layers, strict=True)
    )
    keys = D.state_dict().keys()
    assert sum(k.endswith("._u") for k in keys) == sum(k.endswith("._v") for k in keys) == 4
    plain = _model("dcgan", resolution=32).discriminator
    raw = [_sigma_max(m) for m in plain.modules() if isinstance(m, nn.Conv2d)]
    assert all(s < 0.6 for s in raw), raw


def test_normalisation_of_each_discriminator():
    def kinds(D):
        return {type(m).__name__ for m in D.modules() if not list(m.children())}

    dcgan = kinds(_model("dcgan").discriminator)
    assert "BatchNorm2d" in dcgan and "GroupNorm" not in dcgan
    layer = _model("wgan-gp").discriminator  # Sec. 4: layer norm in place of batchnorm
    assert "GroupNorm" in kinds(layer) and "BatchNorm2d" not in kinds(layer)
    assert [m.num_groups for m in layer.modules() if isinstance(m, nn.GroupNorm)] == [1]
    assert layer.blocks[0][0].bias is not None and layer.blocks[1][0].bias is None
    # batchnorm=false switches G's batchnorm off; the critic's layer norm is d_norm's
    no_bn = _model("wgan-gp", batchnorm=False)
    assert "BatchNorm2d" not in kinds(no_bn.generator) and "GroupNorm" in kinds(no_bn.discriminator)
    bare = _model("wgan-gp", d_norm="none").discriminator
    assert not kinds(bare) & {"GroupNorm", "BatchNorm2d", "BatchNorm1d"}
    assert all(m.bias is not None for m in bare.modules() if isinstance(m, nn.Conv2d))
    sn = _model("sngan").discriminator
    assert not kinds(sn) & {"GroupNorm", "BatchNorm2d", "BatchNorm1d"}
    assert "BatchNorm2d" in kinds(_model("sngan").generator)  # G keeps its batchnorm
    # a critic's output for one sample does not depend on the others (layer norm, train mode)
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    torch.testing.assert_close(layer(x)[:2], layer(x[:2]))
    # fc_hidden: the fully connected hidden layer's norm follows too
    fc = Discriminator(DCGANConfig(ngf=8, ndf=8, fc_hidden=16), 1, 16, norm="layer")
    assert isinstance(fc.head[2], nn.GroupNorm)


def test_dcgan_default_networks_are_unchanged_by_the_norm_switch():
    """norm="batch" (the default) is DCGAN's network: same keys, same initial values."""
    torch.manual_seed(0)
    a = Discriminator(DCGANConfig(), 3, 32).state_dict()
    torch.manual_seed(0)
    b = Discriminator(DCGANConfig(), 3, 32, norm="batch").state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


# ---- several D updates per G update ------------------------------------------------------


def test_wgan_gp_takes_n_critic_d_steps_each_on_its_own_batch_then_one_g_step():
    """Optimizer step hooks count 5 D steps per G step over 3 train_steps (fast path:
    channels_last, fused Adam); D's first forward of each D step is that step's real
    batch, the 5 batches of the concatenated input in order."""
    model = _model("wgan-gp")
    model.accelerate(Speed(CPU, channels_last=True, adam="fused"))
    assert model.real_batches_per_step == 5
    steps = {"d": 0, "g": 0}
    model.opt_d.register_step_post_hook(lambda *_: steps.__setitem__("d", steps["d"] + 1))
    model.opt_g.register_step_post_hook(lambda *_: steps.__setitem__("g", steps["g"] + 1))
    seen: list[torch.Tensor] = []
    model.discriminator.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach()))
    real = (torch.rand(5 * 8, 1, 16, 16) * 2 - 1).contiguous(memory_format=torch.channels_last)
    for _ in range(3):
        stats = model.train_step(real)
    assert steps == {"d": 15, "g": 3}
    assert set(stats) == {"loss_d", "loss_g", "d_real", "d_fake", "d_penalty"}
    # per D step: real, fake, interpolates (the penalty); then G's one forward
    per_step = seen[-16:]
    assert len(seen) == 3 * 16
    for i in range(5):
        assert torch.equal(per_step[3 * i], real[8 * i : 8 * (i + 1)])
    assert per_step[-1].shape[0] == 8
    with pytest.raises(ValueError, match="5 batches of the same size"):
        model.train_step(real[:39])


def test_dcgan_with_n_critic_3_takes_3_d_steps_each_on_its_own_batch_per_g_step():
    """n_critic (Lucic et al.'s disc_iters) on DCGAN itself: 3 D updates, each on one of
    the 3 concatenated real batches, then 1 G update, per train_step."""
    model = _model("dcgan", n_critic=3)
    assert model.real_batches_per_step == 3
    assert _arch("dcgan").real_batches_per_step(model.config) == 3
    order: list[str] = []
    model.opt_d.register_step_post_hook(lambda *_: order.append("d"))
    model.opt_g.register_step_post_hook(lambda *_: order.append("g"))
    seen: list[torch.Tensor] = []
    model.discriminator.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach()))
    real = torch.rand(3 * 8, 1, 16, 16) * 2 - 1
    for _ in range(2):
        stats = model.train_step(real)
    assert order == ["d", "d", "d", "g"] * 2
    # Adam's own step counts: 6 D updates, 2 G updates
    d_step = model.opt_d.state[model._d_params[0]]["step"]
    g_step = model.opt_g.state[model._g_params[0]]["step"]
    assert (int(d_step), int(g_step)) == (6, 2)
    # per D step: real, fake; then G's one forward on fresh latents
    per_step = seen[-7:]
    for i in range(3):
        assert torch.equal(per_step[2 * i], real[8 * i : 8 * (i + 1)])
    assert all(torch.isfinite(v) for v in stats.values())
    with pytest.raises(ValueError, match="3 batches of the same size"):
        model.train_step(real[:23])


@pytest.mark.parametrize("name", ["dcgan", "lsgan", "sngan"])
def test_one_d_step_per_g_step_by_default(name):
    model = _model(name)
    assert model.real_batches_per_step == 1
    order: list[str] = []
    model.opt_d.register_step_post_hook(lambda *_: order.append("d"))
    model.opt_g.register_step_post_hook(lambda *_: order.append("g"))
    model.train_step(torch.rand(8, 1, 16, 16) * 2 - 1)
    assert order == ["d", "g"]


# ---- configs: the papers' defaults, overridable, checked ---------------------------------


def test_configs_hold_the_papers_defaults():
    wgan = _arch("wgan-gp").config_class()
    assert (wgan.lr, wgan.beta1, wgan.beta2) == (1e-4, 0.0, 0.9)
    assert (wgan.gp_weight, wgan.n_critic, wgan.d_norm, wgan.loss) == (
        10.0,
        5,
        "layer",
        "wasserstein",
    )
    sngan = _arch("sngan").config_class()
    assert (sngan.lr, sngan.beta1, sngan.beta2, sngan.n_critic, sngan.loss) == (
        2e-4,
        0.5,
        0.999,
        1,
        "hinge",
    )
    lsgan = _arch("lsgan").config_class()
    assert (lsgan.a, lsgan.b, lsgan.c, lsgan.loss) == (0.0, 1.0, 1.0, "least_squares")
    # the backbone is DCGAN's
    for name in ("lsgan", "wgan-gp", "sngan"):
        config = _arch(name).config_class()
        assert (config.z_dim, config.ngf, config.ndf, config.init_std) == (100, 64, 64, 0.02)
        assert isinstance(config, DCGANConfig)
    assert _arch("wgan-gp").real_batches_per_step(wgan) == 5
    assert _arch("dcgan").real_batches_per_step(DCGANConfig()) == 1
    model = _model("wgan-gp")
    assert model.opt_d.param_groups[0]["lr"] == 1e-4
    assert model.opt_d.param_groups[0]["betas"] == (0.0, 0.9)


def test_settings_come_from_toml_and_set_over_the_paper_defaults(tmp_path):
    from ganbench import hparams as cfg
    from ganbench.training.plan import plan_run

    registries = load_registries()
    toml = tmp_path / "variant.toml"
    toml.write_text('n_critic = 3\nd_norm = "none"\ngp_weight = 1.0\n')
    values = cfg.parse_assignments(["n_critic=2", "gp_weight=5"])
    layers = [(str(toml), cfg.load_toml(toml)), ("--set", values)]
    plan = plan_run(registries, "wgan-gp", "digits", layers)
    assert (plan.model.n_critic, plan.model.d_norm, plan.model.gp_weight) == (2, "none", 5.0)
    assert plan.params()["n_critic"] == "2" and plan.train.batch_size == 64
    # each plugin reads its own digits preset, never DCGAN's (700 steps at batch 128)
    got = {
        name: plan_run(registries, name, "digits").train
        for name in ("dcgan", "lsgan", "sngan", "wgan-gp")
    }
    assert {n: (t.steps, t.batch_size, t.eval_every) for n, t in got.items()} == {
        "dcgan": (700, 128, 100),
        "lsgan": (1000, 128, 100),
        "sngan": (1400, 64, 200),
        "wgan-gp": (400, 64, 100),
    }
    # where a plugin has no preset for the dataset, the defaults: 25 epochs, no scoring
    plain = plan_run(registries, "sngan", "mnist")
    assert (plain.train.steps, plain.train.eval_every) == (None, 0)
    lsgan = plan_run(registries, "lsgan", "digits", [("--set", {"a": "-1", "c": "0"})])
    assert (lsgan.model.a, lsgan.model.b, lsgan.model.c) == (-1.0, 1.0, 0.0)


@pytest.mark.parametrize(
    ("name", "values", "message"),
    [
        ("wgan-gp", {"d_norm": "batch"}, "d_norm must be one of layer, none"),
        ("wgan-gp", {"loss": "hinge"}, "loss must be one of wasserstein"),
        ("wgan-gp", {"n_critic": "0"}, "n_critic must be a whole number of at least 1"),
        ("dcgan", {"n_critic": "0"}, "n_critic must be a whole number of at least 1"),
        ("wgan-gp", {"d_batchnorm": "false"}, "use d_norm=none for an unnormalised critic"),
        ("sngan", {"d_batchnorm": "false"}, "SNGAN: its D has no batchnorm"),
        ("wgan-gp", {"gp_weight": "-1"}, "gp_weight must be 0 or more"),
        ("sngan", {"loss": "minimax"}, "loss must be one of hinge, non_saturating"),
        ("lsgan", {"a": "1"}, "a and b code fake and real images and must differ"),
    ],
)
def test_invalid_settings_are_config_errors(name, values, message):
    from ganbench.training.plan import plan_run

    with pytest.raises(ConfigError, match=message):
        plan_run(load_registries(), name, "digits", [("--set", values)])


# ---- the fast path -------------------------------------------------------------------------


def _first_step(name: str, speed: Speed) -> dict[str, float]:
    model = _model(name)
    model.accelerate(speed)
    torch.manual_seed(1)  # the same batch and latents for every speed
    n = model.real_batches_per_step
    real = (torch.rand(8 * n, 1, 16, 16) * 2 - 1).contiguous(memory_format=speed.memory_format)
    return {k: v.item() for k, v in model.train_step(real).items()}


@pytest.mark.parametrize("name", ["lsgan", "wgan-gp", "sngan"])
def test_each_plugin_steps_under_bf16_and_fp16_autocast(name):
    """bf16 autocast (GPUs' default) gives fp32's first-step statistics within 3%; fp16
    with its gradient scaler gives finite ones (its first steps may be skipped)."""
    fast = {"channels_last": True, "adam": "fused"}
    fp32 = _first_step(name, Speed(CPU, **fast))
    bf16 = _first_step(name, Speed(CPU, autocast=torch.bfloat16, **fast))
    fp16 = _first_step(name, Speed(CPU, autocast=torch.float16, **fast))
    assert bf16.keys() == fp32.keys() == fp16.keys()
    for key in fp32:
        assert bf16[key] == pytest.approx(fp32[key], rel=3e-2, abs=3e-3), key
    assert all(math.isfinite(v) for v in fp16.values()), fp16


@pytest.mark.parametrize("name", ["wgan-gp", "sngan"])
def test_compiled_networks_compute_the_same_steps(name):
    """torch.compile on the CPU (about 35 s for wgan-gp, 11 s for sngan, measured): the
    penalty's forward runs eagerly, spectral norm compiles; the same statistics."""
    eager = _first_step(name, Speed(CPU, channels_last=True, adam="fused"))
    compiled = _first_step(name, Speed(CPU, channels_last=True, adam="fused", compile=True))
    for key in eager:
        assert compiled[key] == pytest.approx(eager[key], rel=1e-3, abs=1e-5), key


def test_acgan_class_term_is_the_mean_negative_log_softmax_of_the_class():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]], dtype=torch.bfloat16)
    labels = torch.tensor([0, 1])
    rows = [[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]]
    by_hand = [
        math.log(sum(math.exp(v) for v in row)) - row[k]
        for row, k in zip(rows, [0, 1], strict=True)
    ]
    got = losses.class_cross_entropy(logits, labels)
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(_mean(by_hand), rel=1e-6)


@pytest.mark.parametrize(
    ("loss", "d_loss", "g_loss"),
    [
        ("hinge", losses.hinge_d, losses.hinge_g),
        ("non_saturating", losses.bce_d, losses.non_saturating_g),
        ("least_squares", lambda r, f: losses.least_squares_d(r, f, 0.0, 1.0),
         lambda g: losses.least_squares_g(g, 1.0)),
        ("wasserstein", losses.wasserstein_d, losses.wasserstein_g),
    ],
)  # fmt: skip
def test_the_resnet_family_trains_with_every_shipped_loss(loss, d_loss, g_loss):
    """Each ResNet loss is the shared one (the same functions the DCGAN family uses), and a
    step with it trains: finite statistics, G and D both changed."""
    from ganbench_plugins.resnet.config import ResNetConfig
    from ganbench_plugins.resnet.model import ResNetGAN

    real, fake = torch.tensor(REAL), torch.tensor(FAKE)
    extra = {"gp_weight": 10.0, "spectral_norm": False} if loss == "wasserstein" else {}
    config = ResNetConfig(loss=loss, g_width=0.125, d_width=0.125, n_critic=1, **extra)
    model = ResNetGAN(config, ImageShape(3, 32))
    assert model.d_loss(real, fake).item() == pytest.approx(d_loss(real, fake).item())
    assert model.g_loss(fake).item() == pytest.approx(g_loss(fake).item())
    torch.manual_seed(0)
    g0 = [p.detach().clone() for p in model.generator.parameters()]
    d0 = [p.detach().clone() for p in model.discriminator.parameters()]
    stats = model.train_step(torch.rand(4, 3, 32, 32) * 2 - 1)
    assert all(math.isfinite(v.item()) for v in stats.values()), stats
    assert ("d_penalty" in stats) == (loss == "wasserstein")
    assert any(not torch.equal(a, b) for a, b in zip(g0, model.generator.parameters(), strict=True))
    assert any(
        not torch.equal(a, b) for a, b in zip(d0, model.discriminator.parameters(), strict=True)
    )


@pytest.mark.parametrize(("n_critic", "factor"), [(1, 1), (1, 2), (5, 2)])
def test_g_batch_factor_gives_g_its_update_on_k_times_d_batch(n_critic, factor):
    """SNGAN's n_gen_samples (2 x D's batch) and WGAN-GP's GEN_BS_MULTIPLE: G's forwards
    are D's batch in every D update and k x D's batch in G's update; with k = 1 and one D
    update G reuses D's fake (one G forward a step)."""
    arch = _arch("resnet")
    config = arch.config_class(
        g_width=0.125, d_width=0.125, n_critic=n_critic, g_batch_factor=factor
    )
    torch.manual_seed(0)
    model = arch.build(config, ImageShape(1, 32))
    sizes: list[int] = []
    model.generator.register_forward_pre_hook(lambda m, args: sizes.append(args[0].shape[0]))
    d_sizes: list[int] = []
    model.discriminator.register_forward_pre_hook(lambda m, args: d_sizes.append(args[0].shape[0]))
    stats = model.train_step(torch.rand(n_critic * 8, 1, 32, 32) * 2 - 1)
    g_update = [] if (n_critic, factor) == (1, 1) else [8 * factor]
    assert sizes == [8] * n_critic + g_update
    assert d_sizes[-1] == 8 * factor  # G's loss is D's output on all of G's batch
    assert all(torch.isfinite(v) for v in stats.values())
    with pytest.raises(ConfigError, match="g_batch_factor"):
        arch.config_class(g_batch_factor=0)
