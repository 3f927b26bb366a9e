"""DCGAN networks against the paper's guidelines: shapes, structure, initialisation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ganbench.interfaces import ImageShape
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
