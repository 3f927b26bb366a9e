"""The ResNet family's networks (ganbench_plugins.resnet): shapes at every resolution,
parameter counts against the references' architectures, the projection and ACGAN heads
and conditional batchnorm against hand computations, gradients, initialisation, config."""

from __future__ import annotations

import math
import tomllib
from importlib import resources

import numpy as np
import pytest
import torch
from torch.nn.utils import parametrize

from ganbench import hparams
from ganbench.errors import ConfigError
from ganbench.plugins.interfaces import ImageShape
from ganbench.training.config import TrainConfig
from ganbench_plugins.resnet.config import ResNetConfig, check_image_shape
from ganbench_plugins.resnet.layers import ConditionalBatchNorm2d, DiscriminatorOutput
from ganbench_plugins.resnet.networks import build_networks

BUILDS = [
    ("resnet", 32),
    ("resnet", 48),
    ("resnet", 64),
    ("resnet", 128),
    ("wgan_gp_resnet", 32),
    ("standard_cnn", 32),
    ("standard_cnn", 48),
]


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def narrow(**kw: object) -> ResNetConfig:
    """A config whose networks are a sixteenth of the references' widths (fast on a CPU)."""
    return ResNetConfig(**{"g_width": 1 / 16, "d_width": 1 / 16, **kw})  # type: ignore[arg-type]


# ---- shapes -------------------------------------------------------------------------------


@pytest.mark.parametrize(("backbone", "resolution"), BUILDS)
@pytest.mark.parametrize("channels", [1, 3])
def test_g_makes_images_and_d_one_output_per_image(backbone, resolution, channels):
    torch.manual_seed(0)
    G, D = build_networks(narrow(backbone=backbone), ImageShape(channels, resolution))
    x = G(torch.randn(5, 128))
    assert x.shape == (5, channels, resolution, resolution)
    assert x.min() >= -1 and x.max() <= 1
    assert D(x).shape == (5,)


@pytest.mark.parametrize(("backbone", "resolution"), [("resnet", 32), ("resnet", 128)])
@pytest.mark.parametrize("conditional", ["projection", "acgan"])
def test_conditional_networks_take_labels(backbone, resolution, conditional):
    torch.manual_seed(0)
    shape = ImageShape(3, resolution, 10)
    G, D = build_networks(narrow(backbone=backbone, conditional=conditional), shape)
    y = torch.tensor([0, 3, 9, 3])
    x = G(torch.randn(4, 128), y)
    assert x.shape == (4, 3, resolution, resolution)
    assert D(x, y).shape == (4,)
    with pytest.raises(ValueError, match="needs the labels"):
        G(torch.randn(4, 128))


# ---- parameter counts ----------------------------------------------------------------------
# Written from the reference code, layer by layer (Chainer's and tflib's convolution and
# linear layers have biases unless told otherwise; batchnorm has a scale and a shift).


def conv(k: int, c_in: int, c_out: int, bias: bool = True) -> int:
    return k * k * c_in * c_out + (c_out if bias else 0)


def bn(c: int, classes: int = 0) -> int:
    """Batchnorm's gamma and beta; per class with categorical conditional batchnorm."""
    return 2 * c * max(classes, 1)


def g_block(c_in: int, c_out: int, classes: int = 0) -> int:
    """gen_models/resblocks.py Block(upsample=True): b1, c1, b2, c2, c_sc (1x1)."""
    return (
        bn(c_in, classes)
        + conv(3, c_in, c_out)
        + bn(c_out, classes)
        + conv(3, c_out, c_out)
        + conv(1, c_in, c_out)
    )


def d_block(c_in: int, c_out: int, shortcut: bool) -> int:
    """dis_models/resblocks.py Block: c1 (c_in -> c_in), c2, c_sc when learnable."""
    return conv(3, c_in, c_in) + conv(3, c_in, c_out) + (conv(1, c_in, c_out) if shortcut else 0)


def d_optimized(c_in: int, c_out: int) -> int:
    """OptimizedBlock: c1, c2, c_sc."""
    return conv(3, c_in, c_out) + conv(3, c_out, c_out) + conv(1, c_in, c_out)


def test_sngan_cifar10_resnet_counts_are_the_references():
    # resnet_32.py (ch=256, dim_z=128): l1, three up-blocks, b5, c5
    g = (128 * 4 * 4 * 256 + 4 * 4 * 256) + 3 * g_block(256, 256) + bn(256) + conv(3, 256, 3)
    # snresnet_32.py (ch=128): block1..4 (block2 downsamples: learned shortcut), l5 without
    # bias (nobias=True)
    d = (
        d_optimized(3, 128)
        + d_block(128, 128, True)
        + 2 * d_block(128, 128, False)
        + 128  # l5: SNLinear(ch, 1, nobias=True)
    )
    assert (g, d) == (4_276_739, 1_053_824)  # the arithmetic, written out once
    G, D = build_networks(ResNetConfig(), ImageShape(3, 32))
    assert (count(G), count(D)) == (g, d)
    # kwotsin/mimicry (a7fda06) SNGANGenerator32 / SNGANDiscriminator32 measured 4,276,739
    # and 1,053,825: the same G, and D with a bias in its output layer (SNLinear(ndf, 1))


def test_projection_cifar10_counts_add_class_batchnorm_and_the_embedding():
    # configs/sn_cifar10_conditional.yml: n_classes 10; each block's two batchnorms become
    # 10-class ones, D gains l_y = SNEmbedID(10, 128) (snresnet_32.py line 19)
    g = (128 * 4 * 4 * 256 + 4 * 4 * 256) + 3 * g_block(256, 256, 10) + bn(256) + conv(3, 256, 3)
    d = d_optimized(3, 128) + d_block(128, 128, True) + 2 * d_block(128, 128, False) + 128
    d += 10 * 128
    assert (g, d) == (4_304_387, 1_055_104)
    G, D = build_networks(ResNetConfig(conditional="projection"), ImageShape(3, 32, 10))
    assert (count(G), count(D)) == (g, d)
    # mimicry's CGANPDGenerator32 / CGANPDDiscriminator32(num_classes=10): 4,304,387 and
    # 1,055,105 (a biased output layer again)


def test_wgan_gp_cifar10_resnet_counts_are_gan_cifar_resnet_py():
    # DIM_G = DIM_D = 128; every tflib layer has a bias (Linear('Discriminator.Output'))
    g = (128 * 4 * 4 * 128 + 4 * 4 * 128) + 3 * g_block(128, 128) + bn(128) + conv(3, 128, 3)
    d = d_optimized(3, 128) + d_block(128, 128, True) + 2 * d_block(128, 128, False) + 129
    assert (g, d) == (1_204_483, 1_053_825)
    config = ResNetConfig(
        backbone="wgan_gp_resnet", loss="wasserstein", gp_weight=10, spectral_norm=False
    )
    G, D = build_networks(config, ImageShape(3, 32))
    assert (count(G), count(D)) == (g, d)
    # ACGAN (gan_cifar_resnet.py line 176): Linear('Discriminator.ACGANOutput', DIM_D, 10)
    config.conditional = "acgan"
    G, D = build_networks(config, ImageShape(3, 32, 10))
    assert count(D) == d + 128 * 10 + 10


def test_imagenet_128_projection_counts_are_the_references():
    # configs/sn_projection.yml: resnet.py / snresnet.py with ch=64, n_classes=1000
    k = 1000
    g = (
        (128 * 4 * 4 * 1024 + 4 * 4 * 1024)
        + g_block(1024, 1024, k)
        + g_block(1024, 512, k)
        + g_block(512, 256, k)
        + g_block(256, 128, k)
        + g_block(128, 64, k)
        + bn(64)
        + conv(3, 64, 3)
    )
    d = (
        d_optimized(3, 64)
        + d_block(64, 128, True)
        + d_block(128, 256, True)
        + d_block(256, 512, True)
        + d_block(512, 1024, True)
        + d_block(1024, 1024, False)
        + (1024 + 1)  # l7, biased
        + k * 1024  # l_y
    )
    assert (g, d) == (41_996_931, 30_041_857)
    with torch.device("meta"):  # shapes only: 72M parameters are never allocated
        config = ResNetConfig(conditional="projection", spectral_norm=False)
        G, D = build_networks(config, ImageShape(3, 128, k))
    assert (count(G), count(D)) == (g, d)
    # mimicry's CGANPDGenerator128(num_classes=1000): 41,996,931


@pytest.mark.parametrize(
    ("resolution", "g_ref", "d_ref"),
    [(48, 4_878_083, 10_141_441), (64, 12_220_675, 10_141_441), (128, 32_150_787, 29_017_857)],
)
def test_unconditional_counts_match_mimicry(resolution, g_ref, d_ref):
    # kwotsin/mimicry (a7fda06) SNGANGenerator{48,64,128} / SNGANDiscriminator{48,64,128}
    # at their defaults, measured: the same layouts as Table 5 and sngan_projection's
    # resnet_64.py / resnet.py, an independent PyTorch implementation
    with torch.device("meta"):
        G, D = build_networks(ResNetConfig(spectral_norm=False), ImageShape(3, resolution))
    assert (count(G), count(D)) == (g_ref, d_ref)


def test_standard_cnn_counts_are_table_3():
    g = (
        (128 * 4 * 4 * 512 + 4 * 4 * 512)
        + 2 * 4 * 4 * 512  # batchnorm over the dense layer's units (chainer-gan-lib bn0)
        + conv(4, 512, 256)
        + bn(256)
        + conv(4, 256, 128)
        + bn(128)
        + conv(4, 128, 64)
        + bn(64)
        + conv(3, 64, 3)
    )
    d = (
        conv(3, 3, 64)
        + conv(4, 64, 64)
        + conv(3, 64, 128)
        + conv(4, 128, 128)
        + conv(3, 128, 256)
        + conv(4, 256, 256)
        + conv(3, 256, 512)
        + (4 * 4 * 512 + 1)
    )
    assert (g, d) == (3_828_739, 2_935_873)
    G, D = build_networks(ResNetConfig(backbone="standard_cnn"), ImageShape(3, 32))
    assert (count(G), count(D)) == (g, d)


# ---- the conditioning layers against hand computations -----------------------------------


def test_conditional_batchnorm_scales_and_shifts_by_class():
    torch.manual_seed(0)
    C, K = 3, 4
    cbn = ConditionalBatchNorm2d(C, K)
    gamma = np.array([[1.0 + k + 0.1 * c for c in range(C)] for k in range(K)])
    beta = np.array([[-2.0 * k + 0.5 * c for c in range(C)] for k in range(K)])
    with torch.no_grad():
        cbn.gamma.weight.copy_(torch.tensor(gamma))
        cbn.beta.weight.copy_(torch.tensor(beta))
    x = torch.randn(6, C, 5, 5) * 3 + 1
    y = torch.tensor([0, 1, 2, 3, 1, 2])
    out = cbn(x, y).detach().double().numpy()

    xs = x.double().numpy()
    mean = xs.mean(axis=(0, 2, 3), keepdims=True)
    var = xs.var(axis=(0, 2, 3), keepdims=True)  # biased: what batchnorm normalises with
    x_hat = (xs - mean) / np.sqrt(var + 1e-5)
    expected = x_hat * gamma[y.numpy()][:, :, None, None] + beta[y.numpy()][:, :, None, None]
    np.testing.assert_allclose(out, expected, atol=1e-5)

    # eval mode: the running statistics, updated once with momentum 0.1 (unbiased var)
    cbn.eval()
    n = xs.shape[0] * 25
    running_mean = 0.1 * mean
    running_var = 0.9 + 0.1 * var * n / (n - 1)
    x_hat = (xs - running_mean) / np.sqrt(running_var + 1e-5)
    expected = x_hat * gamma[y.numpy()][:, :, None, None] + beta[y.numpy()][:, :, None, None]
    np.testing.assert_allclose(cbn(x, y).detach().double().numpy(), expected, atol=1e-5)


def test_conditional_batchnorm_starts_as_batchnorm_and_without_classes_is_batchnorm():
    torch.manual_seed(0)
    x, y = torch.randn(4, 2, 3, 3), torch.tensor([0, 1, 2, 1])
    plain = torch.nn.BatchNorm2d(2)
    torch.testing.assert_close(ConditionalBatchNorm2d(2, 3)(x, y), plain(x))
    unconditional = ConditionalBatchNorm2d(2, 0)
    assert count(unconditional) == 4  # an affine BatchNorm2d: 2 scales, 2 shifts
    torch.testing.assert_close(unconditional(x, y), plain(x))
    with pytest.raises(ValueError, match="needs the labels"):
        ConditionalBatchNorm2d(2, 3)(x)


@pytest.mark.parametrize("backbone", ["resnet", "standard_cnn"])
def test_projection_term_is_the_class_embedding_dotted_with_phi(backbone):
    torch.manual_seed(0)
    _, D = build_networks(
        narrow(backbone=backbone, conditional="projection", spectral_norm=False),
        ImageShape(3, 32, 5),
    )
    features = D.head.embed.weight.shape[1]
    embed = np.arange(5 * features, dtype=np.float64).reshape(5, features) / (5 * features) - 0.5
    with torch.no_grad():
        D.head.embed.weight.copy_(torch.tensor(embed))
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([4, 0, 2, 4])
    with torch.no_grad():
        phi = D.pooled(x).double().numpy()
        conditional, unconditional = D(x, y).double().numpy(), D(x).double().numpy()
        w = D.head.linear.weight.double().numpy()
        b = D.head.linear.bias.double().numpy() if D.head.linear.bias is not None else 0.0
    projection = np.array(
        [sum(embed[y[i], j] * phi[i, j] for j in range(features)) for i in range(4)]
    )
    # float32 against float64, relative to the values' scale (the standard CNN's N(0, 0.02)
    # weights make phi small)
    scale = np.abs(projection).max() + np.abs(unconditional).max()
    assert np.abs(projection).max() > 0.1 * scale  # a term of the output's own size
    np.testing.assert_allclose(conditional - unconditional, projection, atol=1e-4 * scale)
    np.testing.assert_allclose(unconditional, phi @ w[0] + b, atol=1e-4 * scale)


def test_acgan_head_gives_class_logits_beside_the_adversarial_output():
    torch.manual_seed(0)
    _, D = build_networks(narrow(conditional="acgan", spectral_norm=False), ImageShape(1, 32, 7))
    x, y = torch.randn(3, 1, 32, 32), torch.tensor([6, 0, 2])
    with torch.no_grad():
        out = D(x, y, class_logits=True)
        phi = D.pooled(x).double().numpy()
        plain = D(x, y)
    assert isinstance(out, DiscriminatorOutput)
    assert out.adversarial.shape == (3,) and out.class_logits.shape == (3, 7)
    torch.testing.assert_close(out.adversarial, plain)
    w = D.head.classifier.weight.detach().double().numpy()
    b = D.head.classifier.bias.detach().double().numpy()
    np.testing.assert_allclose(out.class_logits.double().numpy(), phi @ w.T + b, atol=1e-4)
    _, D_proj = build_networks(narrow(conditional="projection"), ImageShape(1, 32, 7))
    with pytest.raises(ValueError, match="ACGAN head"):
        D_proj(x, y, class_logits=True)


@pytest.mark.parametrize(("backbone", "reduce"), [("resnet", np.sum), ("wgan_gp_resnet", np.mean)])
def test_phi_is_the_last_map_rectified_and_sum_or_mean_pooled(backbone, reduce):
    # snresnet_32.py lines 27-29 (ReLU, F.sum over positions); gan_cifar_resnet.py lines
    # 171-172 (ReLU, reduce_mean)
    torch.manual_seed(0)
    config = narrow(backbone=backbone, loss="hinge", spectral_norm=False)
    _, D = build_networks(config, ImageShape(3, 32))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        last = D.features(x)[-1].double().numpy()
        phi = D.pooled(x).double().numpy()
    assert last.shape[-2:] == (8, 8)  # Table 4: two halving blocks, two that keep 8x8
    np.testing.assert_allclose(phi, reduce(np.maximum(last, 0), axis=(2, 3)), rtol=1e-5)


def test_unconditional_networks_ignore_dataset_classes():
    torch.manual_seed(0)
    G, D = build_networks(narrow(), ImageShape(3, 32, 10))
    assert not any(isinstance(m, torch.nn.Embedding) for m in G.modules())
    assert D.head.embed is None and D.head.classifier is None
    assert D(G(torch.randn(2, 128))).shape == (2,)


# ---- gradients, spectral normalisation, initialisation ---------------------------------


@pytest.mark.parametrize("backbone", ["resnet", "standard_cnn"])
def test_gradients_reach_z_x_and_only_the_used_class_rows(backbone):
    torch.manual_seed(0)
    config = narrow(backbone=backbone, conditional="projection")
    G, D = build_networks(config, ImageShape(3, 32, 6))
    z = torch.randn(4, 128, requires_grad=True)
    y = torch.tensor([1, 1, 4, 5])
    D(G(z, y), y).sum().backward()
    assert z.grad is not None and torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0
    gamma = next(m for m in G.modules() if isinstance(m, ConditionalBatchNorm2d)).gamma
    used = gamma.weight.grad.abs().sum(1) > 0
    assert used.tolist() == [False, True, False, False, True, True]
    x = torch.randn(4, 3, 32, 32, requires_grad=True)
    D(x, y).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_spectral_norm_on_every_d_layer_and_the_embedding_not_on_g():
    G, D = build_networks(narrow(conditional="projection"), ImageShape(3, 32, 10))
    layers = [
        m
        for m in D.modules()
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear, torch.nn.Embedding))
    ]
    assert layers and all(parametrize.is_parametrized(m, "weight") for m in layers)
    assert D.head.embed in layers
    assert not any(parametrize.is_parametrized(m) for m in G.modules())
    _, D_plain = build_networks(narrow(spectral_norm=False), ImageShape(3, 32))
    assert not any(parametrize.is_parametrized(m) for m in D_plain.modules())


def test_residual_convs_start_glorot_uniform_with_gain_sqrt2_and_zero_biases():
    torch.manual_seed(0)
    G, D = build_networks(ResNetConfig(spectral_norm=False), ImageShape(3, 32))
    block = G.blocks[0]

    def bound(w: torch.Tensor, gain: float) -> float:
        fan_in, fan_out = w.shape[1] * w[0, 0].numel(), w.shape[0] * w[0, 0].numel()
        return gain * math.sqrt(6 / (fan_in + fan_out))

    for weight, gain in [
        (block.c1.weight, math.sqrt(2)),
        (block.c2.weight, math.sqrt(2)),
        (block.c_sc.weight, 1.0),
        (G.linear.weight, 1.0),
    ]:
        limit = bound(weight, gain)
        assert 0.99 * limit < weight.abs().max().item() <= limit
    assert all(
        m.bias.abs().sum() == 0
        for m in [*G.modules(), *D.modules()]
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and m.bias is not None
    )


def test_networks_trace_whole_under_torch_compile():
    # fullgraph: a host sync (.item()) or a branch on a tensor's value would break the graph
    torch.manual_seed(0)
    G, D = build_networks(narrow(conditional="acgan"), ImageShape(3, 32, 10))
    z, y = torch.randn(2, 128), torch.tensor([3, 7])
    g = torch.compile(G, backend="eager", fullgraph=True)
    d = torch.compile(D, backend="eager", fullgraph=True)
    out = d(g(z, y), y, class_logits=True)
    assert out.class_logits.shape == (2, 10)


# ---- config -------------------------------------------------------------------------------


def test_config_refuses_what_cannot_be_built():
    with pytest.raises(ConfigError, match="constrained critic"):
        ResNetConfig(loss="wasserstein", spectral_norm=False)
    with pytest.raises(ConfigError, match="32 px, not 64"):
        check_image_shape(ResNetConfig(backbone="wgan_gp_resnet"), ImageShape(3, 64))
    with pytest.raises(ConfigError, match="backbone=resnet"):
        check_image_shape(ResNetConfig(backbone="standard_cnn"), ImageShape(3, 64))
    with pytest.raises(ConfigError, match="conditional=none"):
        check_image_shape(ResNetConfig(conditional="projection"), ImageShape(3, 32, 0))
    with pytest.raises(ConfigError, match="backbone must be one of"):
        ResNetConfig(backbone="biggan")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["cifar10", "digits", "wgan_gp_cifar10"])
def test_presets_hold_only_known_settings_and_apply(name):
    text = resources.files("ganbench_plugins.resnet").joinpath("presets", f"{name}.toml")
    values = tomllib.loads(text.read_text(encoding="utf-8"))
    train_keys, model_keys = hparams.field_names(TrainConfig), hparams.field_names(ResNetConfig)
    assert set(values) <= set(train_keys) | set(model_keys)
    model = hparams.apply(
        ResNetConfig(), {k: v for k, v in values.items() if k in model_keys}, source=name
    )
    hparams.apply(TrainConfig(), {k: v for k, v in values.items() if k in train_keys}, source=name)
    model.__post_init__()
    # SNGAN's n_gen_samples 128 and WGAN-GP's GEN_BS_MULTIPLE 2 over a batch of 64
    assert model.g_batch_factor == (1 if name == "digits" else 2)
