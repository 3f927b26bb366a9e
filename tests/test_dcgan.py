"""DCGAN networks against the paper's guidelines: shapes, structure, initialisation."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from ganbench.plugins.interfaces import ImageShape
from ganbench_plugins.dcgan.config import DCGANConfig
from ganbench_plugins.dcgan.model import DCGAN
from ganbench_plugins.dcgan.networks import Discriminator, Generator

POOLING = (
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
    nn.MaxUnpool2d,
    nn.LPPool2d,
)


def _sequence(module: nn.Module) -> list[nn.Module]:
    """Leaf modules in forward order (both networks are built as plain sequences)."""
    return [m for m in module.modules() if not list(m.children())]


@pytest.mark.parametrize(("resolution", "layers"), [(32, 4), (64, 5), (128, 6)])
@pytest.mark.parametrize("channels", [1, 3])
def test_output_shapes(resolution, layers, channels):
    config = DCGANConfig(ngf=8, ndf=8)
    G = Generator(config, channels, resolution)
    D = Discriminator(config, channels, resolution)
    z = torch.rand(5, config.z_dim) * 2 - 1
    x = G(z)
    assert x.shape == (5, channels, resolution, resolution)
    assert x.min() >= -1 and x.max() <= 1
    assert D(x).shape == (5,)
    convs_g = [m for m in G.modules() if isinstance(m, nn.ConvTranspose2d)]
    convs_d = [m for m in D.modules() if isinstance(m, nn.Conv2d)]
    # Depth follows the resolution: one projection + one layer per doubling from 4x4.
    assert len(convs_g) == layers and len(convs_d) == layers
    features = D.features(x)
    assert [f.shape[-1] for f in features] == [resolution // 2**i for i in range(1, layers)]


def test_generator_width_at_64_is_the_reference_ngf_times_8():
    G = Generator(DCGANConfig(), 3, 64)
    first = next(m for m in G.modules() if isinstance(m, nn.ConvTranspose2d))
    assert (first.in_channels, first.out_channels) == (100, 512)


@pytest.mark.parametrize("resolution", [32, 64, 128])
def test_generator_follows_the_guidelines(resolution):
    layers = _sequence(Generator(DCGANConfig(), 3, resolution))
    assert not any(isinstance(m, (*POOLING, nn.Linear)) for m in layers)
    convs = [i for i, m in enumerate(layers) if isinstance(m, nn.ConvTranspose2d)]
    for n, i in enumerate(convs):
        conv = layers[i]
        assert conv.kernel_size == (4, 4)
        assert conv.stride == ((1, 1) if n == 0 else (2, 2))  # projection, then fractional
        last = n == len(convs) - 1
        after = layers[i + 1]
        if last:  # no batchnorm on the output; Tanh
            assert isinstance(after, nn.Tanh) and layers[-1] is after
        else:  # batchnorm then ReLU on every other layer
            assert isinstance(after, nn.BatchNorm2d)
            assert isinstance(layers[i + 2], nn.ReLU)
    assert sum(isinstance(m, nn.ReLU) for m in layers) == len(convs) - 1


@pytest.mark.parametrize("resolution", [32, 64, 128])
def test_discriminator_follows_the_guidelines(resolution):
    layers = _sequence(Discriminator(DCGANConfig(), 3, resolution))
    assert not any(isinstance(m, (*POOLING, nn.Linear, nn.ReLU)) for m in layers)
    convs = [i for i, m in enumerate(layers) if isinstance(m, nn.Conv2d)]
    for n, i in enumerate(convs[:-1]):
        conv = layers[i]
        assert conv.kernel_size == (4, 4) and conv.stride == (2, 2)
        if n == 0:  # no batchnorm on the input layer
            assert isinstance(layers[i + 1], nn.LeakyReLU)
        else:
            assert isinstance(layers[i + 1], nn.BatchNorm2d)
            assert isinstance(layers[i + 2], nn.LeakyReLU)
    leaky = [m for m in layers if isinstance(m, nn.LeakyReLU)]
    assert len(leaky) == len(convs) - 1 and all(m.negative_slope == 0.2 for m in leaky)
    head = layers[convs[-1]]  # one conv to a single output: no FC hidden layer
    assert head is layers[-1] and head.out_channels == 1 and head.kernel_size == (4, 4)


def test_ablation_switches_move_batchnorm():
    config = DCGANConfig(bn_g_output=True, bn_d_input=True)
    g = _sequence(Generator(config, 3, 32))
    assert isinstance(g[-2], nn.BatchNorm2d)
    d = _sequence(Discriminator(config, 3, 32))
    assert isinstance(d[1], nn.BatchNorm2d)
    off = DCGANConfig(batchnorm=False)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in Generator(off, 3, 32).modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in Discriminator(off, 3, 32).modules())


def test_initialisation_statistics():
    torch.manual_seed(0)
    model = DCGAN(DCGANConfig(), ImageShape(3, 64))
    for net in (model.generator, model.discriminator):
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                w = m.weight.detach()
                assert abs(w.mean().item()) < 0.002, m
                assert w.std().item() == pytest.approx(0.02, rel=0.05), m
                if m.bias is not None:
                    assert torch.all(m.bias == 0)
            elif isinstance(m, nn.BatchNorm2d) and m.num_features >= 64:
                assert m.weight.mean().item() == pytest.approx(1.0, abs=0.01)
                assert m.weight.std().item() == pytest.approx(0.02, rel=0.35)
                assert torch.all(m.bias == 0)


def test_latent_distributions():
    g = torch.Generator().manual_seed(0)
    uniform = DCGAN(DCGANConfig(), ImageShape(1, 16)).sample_latent(4000, generator=g)
    assert uniform.shape == (4000, 100)
    assert uniform.min() >= -1 and uniform.max() <= 1
    assert uniform.std().item() == pytest.approx(1 / 3**0.5, rel=0.02)
    normal = DCGAN(DCGANConfig(z_distribution="normal"), ImageShape(1, 16)).sample_latent(4000)
    assert normal.std().item() == pytest.approx(1.0, rel=0.02) and normal.min() < -3


def test_train_step_updates_both_networks_and_reports_d_outputs():
    torch.manual_seed(0)
    model = DCGAN(DCGANConfig(ngf=8, ndf=8), ImageShape(1, 16))
    g0 = [p.clone() for p in model.generator.parameters()]
    d0 = [p.clone() for p in model.discriminator.parameters()]
    stats = model.train_step(torch.rand(8, 1, 16, 16) * 2 - 1)
    assert set(stats) >= {"loss_d", "loss_g", "d_real", "d_fake"}
    assert all(not v.requires_grad and v.dim() == 0 for v in stats.values())
    assert 0 < stats["d_real"].item() < 1 and 0 < stats["d_fake"].item() < 1
    assert all(not torch.equal(a, b) for a, b in zip(g0, model.generator.parameters(), strict=True))
    assert all(
        not torch.equal(a, b) for a, b in zip(d0, model.discriminator.parameters(), strict=True)
    )
    # loss_d is the binary cross-entropy of D on real (target 1) and fake (target 0):
    # at initialisation D outputs ~0.5, so each term is ~log 2.
    assert stats["loss_d"].item() == pytest.approx(2 * 0.6931, abs=0.3)


# The ablation switches for Sec. 3's remaining guidelines: pooling instead of strided convs in
# D, upsampling instead of fractionally-strided convs in G, fully connected hidden layers.

RESOLUTIONS = [32, 64, 128]


def _stride2_layers(resolution: int) -> int:
    return {32: 3, 64: 4, 128: 5}[resolution]


def _small(**switches) -> DCGANConfig:
    return DCGANConfig(ngf=8, ndf=8, **switches)


def _check_shapes(config: DCGANConfig, resolution: int, channels: int = 3) -> None:
    G = Generator(config, channels, resolution)
    D = Discriminator(config, channels, resolution)
    assert G.z_dim == config.z_dim
    x = G(torch.rand(5, config.z_dim) * 2 - 1)
    assert x.shape == (5, channels, resolution, resolution)
    assert x.min() >= -1 and x.max() <= 1
    assert D(x).shape == (5,)
    # The probe's maps keep the paper's sizes whatever the switches.
    features = D.features(x)
    n = _stride2_layers(resolution)
    assert [f.shape[-1] for f in features] == [resolution // 2**i for i in range(1, n + 1)]
    assert [f.shape[1] for f in features] == [config.ndf * 2**i for i in range(n)]


def test_defaults_keep_the_checkpoint_layout():
    """Exact resumes, published generators and the zoo load state dicts by these names."""
    G = Generator(DCGANConfig(), 3, 32)
    g = {k: tuple(v.shape) for k, v in G.state_dict().items()}
    d = {k: tuple(v.shape) for k, v in Discriminator(DCGANConfig(), 3, 32).state_dict().items()}
    assert [k for k, v in g.items() if len(v) == 4] == [
        "net.0.weight",
        "net.3.weight",
        "net.6.weight",
        "net.9.weight",
    ]
    assert (g["net.0.weight"], g["net.9.weight"], g["net.9.bias"]) == (
        (100, 256, 4, 4),
        (64, 3, 4, 4),
        (3,),
    )
    assert [k for k, v in d.items() if len(v) == 4] == [
        "blocks.0.0.weight",
        "blocks.1.0.weight",
        "blocks.2.0.weight",
        "head.weight",
    ]
    assert len(g) == 3 * 6 + 2 and len(d) == 2 + 2 * 6 + 2  # convs, batchnorms, biases
    assert next(iter(G.named_parameters()))[0] == "net.0.weight" and G.fc is None


@pytest.mark.parametrize("resolution", RESOLUTIONS)
def test_upsample_nearest_replaces_fractionally_strided_convs(resolution):
    config = DCGANConfig(upsample="nearest")
    layers = _sequence(Generator(config, 3, resolution))
    n = _stride2_layers(resolution)
    transposed = [m for m in layers if isinstance(m, nn.ConvTranspose2d)]
    # Only the projection of z to 4x4 stays ("project and reshape"); no stride 2 anywhere.
    assert len(transposed) == 1 and layers[0] is transposed[0]
    assert transposed[0].kernel_size == (4, 4) and transposed[0].stride == (1, 1)
    ups = [i for i, m in enumerate(layers) if isinstance(m, nn.Upsample)]
    assert len(ups) == n
    for i in ups:
        up, conv = layers[i], layers[i + 1]
        assert (up.scale_factor, up.mode) == (2.0, "nearest")
        assert isinstance(conv, nn.Conv2d) and not isinstance(conv, nn.ConvTranspose2d)
        assert (conv.kernel_size, conv.stride, conv.padding) == ((3, 3), (1, 1), (1, 1))
    convs = [m for m in layers if isinstance(m, nn.Conv2d)]
    assert len(convs) == n and all(m.stride == (1, 1) for m in convs)
    # Batchnorm + ReLU after every hidden layer; the output layer is a conv to RGB and Tanh.
    assert sum(isinstance(m, nn.BatchNorm2d) for m in layers) == n
    assert sum(isinstance(m, nn.ReLU) for m in layers) == n
    assert isinstance(layers[-1], nn.Tanh) and layers[-2] is convs[-1]
    assert convs[-1].out_channels == 3
    assert not any(isinstance(m, (*POOLING, nn.Linear)) for m in layers)
    _check_shapes(_small(upsample="nearest"), resolution)


@pytest.mark.parametrize("resolution", RESOLUTIONS)
@pytest.mark.parametrize(
    ("downsample", "pool"), [("maxpool", nn.MaxPool2d), ("avgpool", nn.AvgPool2d)]
)
def test_downsample_pooling_replaces_strided_convs(resolution, downsample, pool):
    config = DCGANConfig(downsample=downsample)
    D = Discriminator(config, 3, resolution)
    layers = _sequence(D)
    n = _stride2_layers(resolution)
    pools = [m for m in layers if isinstance(m, POOLING)]
    assert len(pools) == n and all(type(m) is pool for m in pools)
    assert all(m.kernel_size in (2, (2, 2)) and m.stride in (2, (2, 2)) for m in pools)
    convs = [m for m in layers if isinstance(m, nn.Conv2d)]
    assert not any(m.stride != (1, 1) for m in convs)  # no stride-2 conv left
    assert len(convs) == n + 1 and convs[-1] is D.head  # the 4x4 conv to the logit stays
    for block in D.blocks:  # conv 3x3 -> (batchnorm) -> LeakyReLU -> pooling
        conv, *_, act, last = block
        assert (conv.kernel_size, conv.stride, conv.padding) == ((3, 3), (1, 1), (1, 1))
        assert isinstance(act, nn.LeakyReLU) and type(last) is pool
    assert not isinstance(D.blocks[0][1], nn.BatchNorm2d)  # none on D's input layer
    assert all(isinstance(block[1], nn.BatchNorm2d) for block in D.blocks[1:])
    assert not any(isinstance(m, (nn.Linear, nn.ReLU)) for m in layers)
    _check_shapes(_small(downsample=downsample), resolution)


@pytest.mark.parametrize("resolution", RESOLUTIONS)
def test_fc_hidden_adds_one_fully_connected_hidden_layer(resolution):
    config = DCGANConfig(fc_hidden=32)
    n = _stride2_layers(resolution)
    G = Generator(config, 3, resolution)
    g = _sequence(G)
    # z -> Linear -> BatchNorm1d -> ReLU -> the projection from 32 units to 4x4.
    assert isinstance(g[0], nn.Linear) and (g[0].in_features, g[0].out_features) == (100, 32)
    assert isinstance(g[1], nn.BatchNorm1d) and isinstance(g[2], nn.ReLU)
    assert isinstance(g[3], nn.ConvTranspose2d) and g[3] is G.net[0]
    assert g[3].in_channels == 32 and g[3].stride == (1, 1)
    assert sum(isinstance(m, nn.Linear) for m in g) == 1
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in g) == n + 1
    assert next(iter(G.parameters())) is g[0].weight  # forward order
    D = Discriminator(config, 3, resolution)
    d = _sequence(D)
    width = 64 * 2 ** (n - 1)
    # The last 4x4 map -> flatten -> Linear -> BatchNorm1d -> LeakyReLU -> Linear to the logit.
    flat, fc, bn, act, logit = d[-5:]
    assert isinstance(flat, nn.Flatten) and list(D.head) == [flat, fc, bn, act, logit]
    assert (fc.in_features, fc.out_features) == (width * 16, 32)
    assert isinstance(bn, nn.BatchNorm1d) and isinstance(act, nn.LeakyReLU)
    assert (logit.in_features, logit.out_features) == (32, 1)
    convs = [m for m in d if isinstance(m, nn.Conv2d)]
    assert len(convs) == n and all(m.stride == (2, 2) for m in convs)  # blocks as they were
    assert len(D.blocks) == n
    _check_shapes(_small(fc_hidden=32), resolution)


def test_fc_hidden_without_batchnorm_keeps_biases():
    config = DCGANConfig(fc_hidden=16, batchnorm=False)
    for net in (Generator(config, 1, 32), Discriminator(config, 1, 32)):
        layers = _sequence(net)
        assert not any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in layers)
        assert all(m.bias is not None for m in layers if isinstance(m, nn.Linear))
    _check_shapes(_small(fc_hidden=16, batchnorm=False), 32)


@pytest.mark.parametrize(
    "switches",
    [{}, {"fc_hidden": 16}, {"bn_d_input": True}, {"downsample": "avgpool"}],
    ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()) or "paper",
)
def test_d_batchnorm_off_removes_exactly_d_s_batchnorm_layers(switches):
    """Lucic et al.'s ``discriminator_batchnorm``: D loses its BatchNorm layers (its
    convolutions and linear layers get their biases, as with ``batchnorm=false``), every
    other D layer stays, and G is the same network, module for module."""
    on, off = DCGANConfig(**switches), DCGANConfig(d_batchnorm=False, **switches)
    bns = (nn.BatchNorm1d, nn.BatchNorm2d)
    d_on, d_off = _sequence(Discriminator(on, 3, 32)), _sequence(Discriminator(off, 3, 32))
    assert any(isinstance(m, bns) for m in d_on)
    assert not any(isinstance(m, bns) for m in d_off)
    assert [type(m) for m in d_off] == [type(m) for m in d_on if not isinstance(m, bns)]
    assert all(m.bias is not None for m in d_off if isinstance(m, (nn.Conv2d, nn.Linear)))
    # D as batchnorm=false builds it; G as the default builds it
    no_bn = DCGANConfig(batchnorm=False, **switches)
    assert [repr(m) for m in d_off] == [repr(m) for m in _sequence(Discriminator(no_bn, 3, 32))]
    g_on, g_off = Generator(on, 3, 32), Generator(off, 3, 32)
    assert repr(g_off) == repr(g_on)
    assert {k: v.shape for k, v in g_off.state_dict().items()} == {
        k: v.shape for k, v in g_on.state_dict().items()
    }
    # the default is the paper's D, batchnorm and all
    assert DCGANConfig().d_batchnorm is True
    assert repr(Discriminator(DCGANConfig(d_batchnorm=True), 3, 32)) == repr(
        Discriminator(DCGANConfig(), 3, 32)
    )
    torch.manual_seed(0)
    model = DCGAN(_small(d_batchnorm=False, **switches), ImageShape(1, 32))
    stats = model.train_step(torch.rand(8, 1, 32, 32) * 2 - 1)
    assert all(torch.isfinite(v) for v in stats.values())


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("wgan-gp", "d_batchnorm=false does not apply to WGAN-GP"),
        ("sngan", "d_batchnorm=false does not apply to SNGAN: its D has no batchnorm"),
    ],
)
def test_d_batchnorm_off_is_refused_in_one_line_where_d_has_no_batchnorm(
    ganbench_run_cli, name, message
):
    args = ("run", name, "--dataset", "digits", "--set", "d_batchnorm=false", "--no-progress")
    result = ganbench_run_cli(*args)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0], result.output
    if name == "wgan-gp":
        assert "use d_norm=none" in errors[0]
    # lsgan's D is DCGAN's: there the switch applies
    from ganbench.plugins import load_registries

    lsgan = load_registries().architectures.get("lsgan")
    d = lsgan.build(lsgan.config_class(d_batchnorm=False), ImageShape(1, 32)).discriminator
    assert not any(isinstance(m, nn.BatchNorm2d) for m in d.modules())


@pytest.mark.parametrize("downsample", ["maxpool", "avgpool"])
def test_batchnorm_switches_with_pooling_and_upsampling(downsample):
    config = DCGANConfig(
        downsample=downsample, upsample="nearest", bn_g_output=True, bn_d_input=True
    )
    g = _sequence(Generator(config, 3, 32))
    assert isinstance(g[-3], nn.Conv2d) and g[-3].bias is None  # the batchnorm's shift instead
    assert isinstance(g[-2], nn.BatchNorm2d) and g[-2].num_features == 3
    first = Discriminator(config, 3, 32).blocks[0]
    assert [type(m) for m in first][:3] == [nn.Conv2d, nn.BatchNorm2d, nn.LeakyReLU]
    assert first[0].bias is None and isinstance(first[-1], POOLING)
    paper = Discriminator(DCGANConfig(downsample=downsample), 3, 32).blocks[0]
    assert paper[0].bias is not None and not any(isinstance(m, nn.BatchNorm2d) for m in paper)
    _check_shapes(_small(downsample=downsample, upsample="nearest", bn_g_output=True), 32)


def test_initialisation_covers_linear_and_batchnorm1d():
    torch.manual_seed(0)
    model = DCGAN(DCGANConfig(fc_hidden=512, upsample="nearest"), ImageShape(3, 32))
    linears = [
        m
        for net in (model.generator, model.discriminator)
        for m in net.modules()
        if isinstance(m, nn.Linear)
    ]
    assert len(linears) == 3
    for m in linears:
        w = m.weight.detach()
        assert abs(w.mean().item()) < 0.002 and w.std().item() == pytest.approx(0.02, rel=0.05)
        assert m.bias is None or torch.all(m.bias == 0)
    norms = [m for m in model.generator.modules() if isinstance(m, nn.BatchNorm1d)]
    norms += [m for m in model.discriminator.modules() if isinstance(m, nn.BatchNorm1d)]
    assert len(norms) == 2
    for m in norms:
        assert m.weight.mean().item() == pytest.approx(1.0, abs=0.005)
        assert m.weight.std().item() == pytest.approx(0.02, rel=0.2)
        assert torch.all(m.bias == 0)
    convs = [m for m in model.generator.modules() if type(m) is nn.Conv2d]
    assert all(m.weight.std().item() == pytest.approx(0.02, rel=0.1) for m in convs[:-1])


@pytest.mark.parametrize(
    "switches",
    [
        {"downsample": "maxpool"},
        {"downsample": "avgpool"},
        {"upsample": "nearest"},
        {"fc_hidden": 32},
        {"fc_hidden": 32, "batchnorm": False},
        {"downsample": "avgpool", "upsample": "nearest", "fc_hidden": 16, "bn_d_input": True},
    ],
    ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()),
)
def test_train_step_runs_with_each_switch(switches):
    torch.manual_seed(0)
    model = DCGAN(_small(**switches), ImageShape(1, 32))
    g0 = [p.clone() for p in model.generator.parameters()]
    d0 = [p.clone() for p in model.discriminator.parameters()]
    stats = model.train_step(torch.rand(8, 1, 32, 32) * 2 - 1)
    assert all(torch.isfinite(v) for v in stats.values())
    assert 0 < stats["d_real"].item() < 1 and 0 < stats["d_fake"].item() < 1
    assert all(not torch.equal(a, b) for a, b in zip(g0, model.generator.parameters(), strict=True))
    assert all(
        not torch.equal(a, b) for a, b in zip(d0, model.discriminator.parameters(), strict=True)
    )
    assert stats["loss_d"].item() == pytest.approx(2 * 0.6931, abs=0.3)


def test_switches_parse_from_set_and_are_logged():
    from ganbench import hparams as cfg
    from ganbench.plugins import load_registries
    from ganbench.training.plan import plan_run

    values = cfg.parse_assignments(["downsample=avgpool", "upsample=nearest", "fc_hidden=256"])
    plan = plan_run(load_registries(), "dcgan", "digits", [("--set", values)])
    assert (plan.model.downsample, plan.model.upsample, plan.model.fc_hidden) == (
        "avgpool",
        "nearest",
        256,
    )
    params = plan.params()
    assert (params["downsample"], params["upsample"], params["fc_hidden"]) == (
        "avgpool",
        "nearest",
        "256",
    )
    paper = plan_run(load_registries(), "dcgan", "digits").model
    assert (paper.downsample, paper.upsample, paper.fc_hidden) == ("strided", "transposed", 0)


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("downsample=bogus", "downsample must be one of strided, maxpool, avgpool; got 'bogus'"),
        ("upsample=bilinear", "upsample must be one of transposed, nearest; got 'bilinear'"),
        ("fc_hidden=-1", "fc_hidden must be 0 (no fully connected hidden layer, the paper)"),
        ("fc_hidden=2.5", "fc_hidden must be a whole number"),
    ],
)
def test_invalid_switch_values_are_one_line_errors(ganbench_run_cli, assignment, message):
    result = ganbench_run_cli(
        "run", "dcgan", "--dataset", "digits", "--set", assignment, "--no-progress"
    )
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0], result.output


INVALID = [
    ({"downsample": "bogus"}, "downsample must be one of strided, maxpool, avgpool; got 'bogus'"),
    ({"upsample": "Nearest"}, "upsample must be one of transposed, nearest; got 'Nearest'"),
    ({"loss": "wasserstein"}, "loss must be one of non_saturating, minimax"),
    ({"fc_hidden": -8}, "fc_hidden must be 0 (no fully connected hidden layer, the paper)"),
]


@pytest.mark.parametrize(
    ("switches", "message"),
    [*INVALID, ({"fc_hidden": 1.5}, "fc_hidden must be a whole number; got 1.5")],
)
def test_invalid_values_in_code_are_config_errors(switches, message):
    from ganbench.errors import ConfigError

    with pytest.raises(ConfigError, match=re.escape(message)) as caught:
        DCGANConfig(**switches)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("switches", "message"),
    [
        *INVALID,
        ({"fc_hidden": 1.5}, "fc_hidden must be a whole number"),
    ],
)
def test_invalid_values_in_a_toml_file_are_config_errors(tmp_path, switches, message):
    from ganbench import hparams as cfg
    from ganbench.errors import ConfigError
    from ganbench.plugins import load_registries
    from ganbench.training.plan import plan_run

    [(key, value)] = switches.items()
    path = tmp_path / "variant.toml"
    path.write_text(f"{key} = {value!r}\n".replace("'", '"'))
    with pytest.raises(ConfigError, match=re.escape(message)) as caught:
        plan_run(load_registries(), "dcgan", "digits", [(str(path), cfg.load_toml(path))])
    assert "\n" not in str(caught.value)


def test_generator_with_upsampling_and_fc_hidden_exports_to_onnx(tmp_path):
    """The zoo's export takes any generator: the ablations export and match onnxruntime."""
    from ganbench.zoo.export import DEFAULT_OPSET, check_parity, export_onnx

    config = _small(upsample="nearest", fc_hidden=16)
    model = DCGAN(config, ImageShape(1, 16))
    model.train_step(torch.rand(8, 1, 16, 16) * 2 - 1)  # running statistics that are not 0/1
    path = tmp_path / "g.onnx"
    export_onnx(model.generator, config.z_dim, path, DEFAULT_OPSET)
    parity = check_parity(model.generator, path, config.z_dim)
    assert parity.max_abs_diff <= parity.atol
