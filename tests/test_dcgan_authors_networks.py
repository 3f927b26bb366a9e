"""The DCGAN authors' own networks as DCGAN options: the ImageNet-32 model of the paper's
probe (``network=imagenet32``), 5x5 kernels (``kernel=5``) and the SVHN preset.

Every expected number is written out here from Newmu/dcgan_code (imagenet/
load_pretrained.py, svhn/svhn_semisup_analysis.py) and the .npy headers of its released
weights, not computed by the plugin's own formulas.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ganbench import hparams as cfg
from ganbench.errors import ConfigError
from ganbench.plugins import load_registries
from ganbench.plugins.interfaces import ImageShape
from ganbench.probe.features import LayerFeatures, pooled_features
from ganbench.training.plan import plan_run
from ganbench_plugins.dcgan import DCGANArchitecture
from ganbench_plugins.dcgan.config import DCGANConfig
from ganbench_plugins.dcgan.model import DCGAN
from ganbench_plugins.dcgan.networks import Discriminator, Generator

#: The authors' model: nz 256, ngf = ndf = 128 (load_pretrained.py lines 29-33).
AUTHORS = {"network": "imagenet32", "z_dim": 256, "ngf": 128, "ndf": 128}

#: D's conv layers (load_pretrained.py lines 56-61): (channels, side) out, stride.
D_TABLE = [
    ((128, 32), 1),
    ((128, 16), 2),
    ((256, 16), 1),
    ((256, 8), 2),
    ((512, 8), 1),
    ((512, 4), 2),
]
#: G (lines 45-52): the dense layer reshaped to 512x4x4, then six 3x3 deconvs.
G_TABLE = [
    ((512, 8), 2),
    ((256, 8), 1),
    ((256, 16), 2),
    ((128, 16), 1),
    ((128, 32), 2),
    ((3, 32), 1),
]

#: The released weights' shapes in the authors' parameter order (discrim_params: w, w2, g2,
#: b2, ..., wy; gen_params: w, g, b, w2, g2, b2, ..., wx), from the .npy headers of
#: models/imagenet_gan_pretrain_128f_relu_lrelu_7l_3x3_256z/30_*_params.jl_NN.npy (the
#: headers absent from the mirror, D's w5 and w6 and G's w, w2, w3, filled in from their
#: neighbours' batchnorm widths).
AUTHORS_D_SHAPES = [
    (128, 3, 3, 3),
    (128, 128, 3, 3), (128,), (128,),
    (256, 128, 3, 3), (256,), (256,),
    (256, 256, 3, 3), (256,), (256,),
    (512, 256, 3, 3), (512,), (512,),
    (512, 512, 3, 3), (512,), (512,),
    (8192, 1),
]  # fmt: skip
AUTHORS_G_SHAPES = [
    (256, 8192), (8192,), (8192,),
    (512, 512, 3, 3), (512,), (512,),
    (512, 256, 3, 3), (256,), (256,),
    (256, 256, 3, 3), (256,), (256,),
    (256, 128, 3, 3), (128,), (128,),
    (128, 128, 3, 3), (128,), (128,),
    (128, 3, 3, 3),
]  # fmt: skip


def _outputs(network: nn.Module, kinds: tuple[type, ...], x: torch.Tensor) -> list:
    """(module, output shape) of every module of ``kinds``, in forward order, by hooks."""
    seen: list = []
    hooks = [
        m.register_forward_hook(lambda m, _i, out: seen.append((m, tuple(out.shape[1:]))))
        for m in network.modules()
        if isinstance(m, kinds)
    ]
    with torch.no_grad():
        network(x)
    for h in hooks:
        h.remove()
    return seen


def test_imagenet32_discriminator_layer_by_layer():
    D = Discriminator(DCGANConfig(**AUTHORS), 3, 32).eval()
    convs = _outputs(D, (nn.Conv2d,), torch.zeros(2, 3, 32, 32))
    assert len(convs) == 7  # six 3x3 convs and the 4x4 logit
    for (conv, shape), ((c, side), stride) in zip(convs[:6], D_TABLE, strict=True):
        assert shape == (c, side, side)
        assert (conv.kernel_size, conv.stride, conv.padding) == ((3, 3), (stride,) * 2, (1, 1))
    head, shape = convs[6]
    assert head is D.head and shape == (1, 1, 1) and head.kernel_size == (4, 4)
    # batchnorm + LeakyReLU(0.2) on all but the input layer; no biases (the authors' none)
    assert [type(block[1]) for block in D.blocks] == [nn.LeakyReLU] + [nn.BatchNorm2d] * 5
    assert all(block[-1].negative_slope == 0.2 for block in D.blocks)
    assert all(m.bias is None for m, _ in convs)
    assert [tuple(p.shape) for p in D.parameters()][:-1] == AUTHORS_D_SHAPES[:-1]
    assert D.head.weight.numel() == math.prod(AUTHORS_D_SHAPES[-1])


def test_imagenet32_generator_layer_by_layer():
    G = Generator(DCGANConfig(**AUTHORS), 3, 32).eval()
    z = torch.rand(2, 256) * 2 - 1
    deconvs = _outputs(G, (nn.ConvTranspose2d,), z)
    assert len(deconvs) == 6
    for (deconv, shape), ((c, side), stride) in zip(deconvs, G_TABLE, strict=True):
        assert shape == (c, side, side)
        assert (deconv.kernel_size, deconv.stride) == ((3, 3), (stride, stride))
        assert deconv.padding == (1, 1) and deconv.output_padding == (stride - 1,) * 2
    dense = _outputs(G, (nn.Linear, nn.BatchNorm1d), z)
    assert [shape for _, shape in dense] == [(8192,), (8192,)]
    relus = _outputs(G, (nn.ReLU,), z)  # the G layers the model names: maps, 4x4 up
    assert [shape for _, shape in relus] == [(512, 4, 4)] + [(c, s, s) for (c, s), _ in G_TABLE[:5]]
    x = G(z)
    assert x.shape == (2, 3, 32, 32) and isinstance(G.net[-1], nn.Tanh)
    assert not isinstance(G.net[-2], nn.BatchNorm2d)  # the output layer: deconv, then Tanh
    shapes = [tuple(p.shape) for p in G.parameters()]
    assert shapes[0] == AUTHORS_G_SHAPES[0][::-1]  # Linear keeps (out, in)
    assert shapes[1:] == AUTHORS_G_SHAPES[1:]


def test_imagenet32_parameter_counts_by_hand():
    config = DCGANConfig(**AUTHORS)
    d_convs = 3 * 128 * 9 + 128 * 128 * 9 + 128 * 256 * 9 + 256 * 256 * 9 + 256 * 512 * 9
    d_convs += 512 * 512 * 9
    d_bn = 2 * (128 + 256 + 256 + 512 + 512)
    d_logit = 512 * 4 * 4
    g_dense = 256 * 8192 + 2 * 8192
    g_deconvs = 9 * (512 * 512 + 512 * 256 + 256 * 256 + 256 * 128 + 128 * 128 + 128 * 3)
    g_bn = 2 * (512 + 256 + 256 + 128 + 128)
    count = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
    assert count(Discriminator(config, 3, 32)) == d_convs + d_bn + d_logit == 4_586_112
    assert count(Generator(config, 3, 32)) == g_dense + g_deconvs + g_bn == 6_690_688
    assert sum(map(math.prod, AUTHORS_D_SHAPES)) == 4_586_112
    assert sum(map(math.prod, AUTHORS_G_SHAPES)) == 6_690_688


def test_imagenet32_gives_the_paper_s_28672_probe_features():
    """Sec. 5.1 / Table 1: every D conv layer max-pooled to 4x4 and concatenated."""
    model = DCGAN(DCGANConfig(**AUTHORS), ImageShape(3, 32))
    D = model.discriminator.eval()
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    layers = model.discriminator_layers()
    assert len(layers) == 6
    with torch.no_grad():
        maps = LayerFeatures(D, layers)(x)
        features = pooled_features(maps)
        assert features.shape == (3, 28_672) == (3, 16 * (128 + 128 + 256 + 256 + 512 + 512))
        assert torch.equal(features, pooled_features(D.features(x)))
    assert [tuple(m.shape[1:]) for m in maps] == [(c, s, s) for (c, s), _ in D_TABLE]
    assert [m for m in model.generator_layers()] == [
        m for m in model.generator.net if isinstance(m, nn.ReLU)
    ]


@pytest.mark.parametrize(("resolution", "channels"), [(32, 3), (64, 1)])
def test_kernel_5_keeps_every_size(resolution, channels):
    """kernel=5 (the authors' Theano code): D Conv2d(5, 2, 2), G ConvTranspose2d(5, 2, 2,
    output_padding 1); z's 4x4 projection and D's 4x4 logit stay."""
    config = DCGANConfig(kernel=5)
    G, D = Generator(config, channels, resolution), Discriminator(config, channels, resolution)
    n = int(math.log2(resolution)) - 2
    deconvs = _outputs(G, (nn.ConvTranspose2d,), torch.rand(2, 100))
    assert deconvs[0][0].kernel_size == (4, 4) and deconvs[0][1][1:] == (4, 4)
    for i, (deconv, shape) in enumerate(deconvs[1:], start=1):
        assert (deconv.kernel_size, deconv.stride, deconv.padding) == ((5, 5), (2, 2), (2, 2))
        assert deconv.output_padding == (1, 1) and shape[1:] == (4 * 2**i, 4 * 2**i)
    assert deconvs[-1][1] == (channels, resolution, resolution)
    convs = _outputs(D, (nn.Conv2d,), torch.zeros(2, channels, resolution, resolution))
    assert [shape[1:] for _, shape in convs] == [
        (resolution // 2**i,) * 2 for i in range(1, n + 1)
    ] + [(1, 1)]
    assert all(c.kernel_size == (5, 5) and c.padding == (2, 2) for c, _ in convs[:-1])
    assert convs[-1][0].kernel_size == (4, 4)


def test_kernel_5_at_svhn_s_widths_has_the_released_weights_shapes():
    """The released SVHN model's convs (200_*_params.jl_NN.npy headers): D (64, 3, 5, 5),
    (128, 64, 5, 5), (256, 128, 5, 5); G (256, 128, 5, 5), (128, 64, 5, 5), (64, 3, 5, 5);
    the projection (100, 4096) as many weights as a 4x4 deconv from 100 to 256."""
    config = DCGANConfig(kernel=5, ndf=64, ngf=64)
    convs = (nn.Conv2d, nn.ConvTranspose2d)
    d, g = (
        [tuple(m.weight.shape) for m in net.modules() if isinstance(m, convs)]
        for net in (Discriminator(config, 3, 32), Generator(config, 3, 32))
    )
    assert d[:3] == [(64, 3, 5, 5), (128, 64, 5, 5), (256, 128, 5, 5)]
    assert d[3] == (1, 256, 4, 4) and math.prod(d[3]) == 4096
    assert g[1:] == [(256, 128, 5, 5), (128, 64, 5, 5), (64, 3, 5, 5)]
    assert math.prod(g[0]) == 100 * 4096


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"network": "imagenet32", "downsample": "maxpool"}, "downsample=maxpool does not apply"),
        ({"network": "imagenet32", "upsample": "nearest"}, "upsample=nearest does not apply"),
        ({"network": "imagenet32", "fc_hidden": "8"}, "fc_hidden=8 does not apply"),
        ({"network": "imagenet32", "kernel": "5"}, "kernel=5 does not apply"),
        ({"network": "imagenet64"}, "network must be one of paper, imagenet32"),
        ({"kernel": "3"}, "kernel must be 4 (PyTorch's reference DCGAN) or 5"),
        ({"kernel": "6"}, "kernel must be 4"),
        ({"kernel": "4.5"}, "kernel must be a whole number"),
        ({"kernel": "5", "downsample": "avgpool"}, "kernel=5 applies to the strided convs"),
        ({"kernel": "5", "upsample": "nearest"}, "kernel=5 applies to the strided convs"),
    ],
)
def test_refusals_are_one_line(values, message):
    with pytest.raises(ConfigError) as exc:
        cfg.apply(DCGANConfig(), values, source="--set")
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_refusals_of_configs_built_in_code():
    for values in ({"kernel": 3}, {"kernel": True}, {"network": "imagenet32", "fc_hidden": 4}):
        with pytest.raises(ConfigError) as exc:
            DCGANConfig(**values)
        assert "\n" not in str(exc.value)


@pytest.mark.parametrize(("channels", "resolution"), [(3, 64), (1, 32), (3, 16)])
def test_imagenet32_is_built_for_32px_colour_images_only(channels, resolution):
    config = DCGANConfig(network="imagenet32", ngf=4, ndf=4)
    for network in (Generator, Discriminator):
        with pytest.raises(ConfigError, match="use --resolution 32 on a colour dataset") as exc:
            network(config, channels, resolution)
        assert "\n" not in str(exc.value)
    with pytest.raises(ConfigError, match="network=imagenet32 is built for 32x32"):
        DCGANArchitecture().build(config, ImageShape(channels, resolution))


def _finite_steps(model: DCGAN, steps: int, batch: int) -> None:
    torch.manual_seed(0)
    before = [p.detach().clone() for p in model.generator.parameters()]
    for _ in range(steps):
        real = torch.rand(batch * model.real_batches_per_step, 3, 32, 32) * 2 - 1
        stats = model.train_step(real)
        assert stats["loss_d"].shape == () and stats["loss_g"].shape == ()
        assert all(torch.isfinite(v).all() for v in stats.values()), stats
    after = list(model.generator.parameters())
    assert all(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_imagenet32_trains_three_steps_at_small_width():
    torch.manual_seed(0)
    model = DCGAN(DCGANConfig(network="imagenet32", ngf=16, ndf=16), ImageShape(3, 32))
    _finite_steps(model, 3, 8)
    assert model.generator(model.sample_latent(2)).shape == (2, 3, 32, 32)


@pytest.mark.parametrize("name", ["wgan-gp", "sngan", "lsgan"])
def test_the_family_builds_and_trains_on_imagenet32(name):
    """The family's switches where they apply: WGAN-GP's layer-normalised critic, SNGAN's
    spectrally normalised one, LSGAN's batchnorm D."""
    arch = load_registries().architectures.get(name)
    config = cfg.apply(
        arch.config_class(), {"network": "imagenet32", "ngf": 8, "ndf": 8}, source="test"
    )
    torch.manual_seed(0)
    model = arch.build(config, ImageShape(3, 32))
    layers = _outputs(model.discriminator, (nn.Conv2d,), torch.zeros(2, 3, 32, 32))
    assert [shape for _, shape in layers[:6]] == [(c // 16, s, s) for (c, s), _ in D_TABLE]
    _finite_steps(model, 1, 4)


@pytest.mark.parametrize("norm", ["layer", "none"])
def test_imagenet32_critic_norms(norm):
    D = Discriminator(DCGANConfig(network="imagenet32", ndf=8), 3, 32, norm=norm)
    hidden = D.blocks[1:]
    want = nn.GroupNorm if norm == "layer" else nn.LeakyReLU
    assert all(type(block[1]) is want for block in hidden)
    assert all((block[0].bias is None) == (norm == "layer") for block in hidden)
    # the authors' bias-free input conv and logit stay so
    assert D.blocks[0][0].bias is None and D.head.bias is None


def test_imagenet32_batchnorm_switches():
    off = DCGANConfig(network="imagenet32", ngf=8, ndf=8, batchnorm=False)
    G, D = Generator(off, 3, 32), Discriminator(off, 3, 32)
    bns = (nn.BatchNorm1d, nn.BatchNorm2d)
    assert not any(isinstance(m, bns) for m in [*G.modules(), *D.modules()])
    assert G.net[1].bias is not None and all(b[0].bias is not None for b in D.blocks[1:])
    on = DCGANConfig(network="imagenet32", ngf=8, ndf=8, bn_g_output=True, bn_d_input=True)
    assert isinstance(Generator(on, 3, 32).net[-2], nn.BatchNorm2d)
    assert isinstance(Discriminator(on, 3, 32).blocks[0][1], nn.BatchNorm2d)
    d_off = Discriminator(DCGANConfig(network="imagenet32", ndf=8, d_batchnorm=False), 3, 32)
    assert not any(isinstance(m, bns) for m in d_off.modules())


#: What svhn.toml must hold: the name 'svhn_unsup_all_conv_dcgan_100z_gaussian_lr_0.0005_64mb'
#: (svhn_semisup_analysis.py line 44), the 5x5 stride-2 padding-2 convs (line 56) and the
#: widths of its weights (D 64, 128, 256; G's last hidden layer 64).
SVHN = {
    "z_dim": 100,
    "z_distribution": "normal",
    "lr": 0.0005,
    "batch_size": 64,
    "kernel": 5,
    "ndf": 64,
    "ngf": 64,
}


def test_the_svhn_preset_is_the_authors_released_model():
    assert dict(DCGANArchitecture().preset("svhn")) == SVHN
    plan = plan_run(load_registries(), "dcgan", "svhn")
    got = {k: getattr(plan.model, k) for k in SVHN if k != "batch_size"}
    assert got == {k: v for k, v in SVHN.items() if k != "batch_size"}
    assert plan.train.batch_size == 64 and plan.model.beta1 == 0.5
    assert plan.model.network == "paper"
    # the family's plugins read their own presets, not DCGAN's
    assert plan_run(load_registries(), "lsgan", "svhn").model.kernel == 4
