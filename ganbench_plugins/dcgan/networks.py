"""The DCGAN generator and discriminator, built for any power-of-two resolution.

The paper's guidelines (Sec. 3): strided convolutions in D and fractionally-strided ones in G
instead of pooling; batchnorm in both except G's output and D's input layer; no fully
connected hidden layers; ReLU in G with a Tanh output; LeakyReLU(0.2) in D. The number of
layers follows from the resolution: each 4x4 stride-2 layer doubles (G) or halves (D) it.

Each guideline can be undone by a config switch, for the ablations (``DCGANConfig``):
``upsample="nearest"`` (2x nearest-neighbour upsampling + 3x3 conv in G),
``downsample="maxpool"``/``"avgpool"`` (3x3 conv + 2x2 pooling in D), ``fc_hidden=N`` (one
fully connected hidden layer of N units in each network), ``batchnorm``/``bn_g_output``/
``bn_d_input``, ``d_batchnorm`` (D's batchnorm alone). At the defaults the networks are the
paper's, module for module. ``kernel=5`` makes the stride-2 layers 5x5 (the authors' Theano
code); ``network="imagenet32"`` builds the authors' ImageNet-32 networks instead
(:mod:`ganbench_plugins.dcgan.imagenet32`), with the same switches where they apply.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ganbench_plugins.dcgan import imagenet32
from ganbench_plugins.dcgan.config import RESOLUTIONS, DCGANConfig

#: What normalises D's hidden layers: DCGAN's batchnorm, layer normalisation (WGAN-GP's
#: critic), or nothing (SNGAN's D, whose layers spectral normalisation constrains).
DNorm = Literal["batch", "layer", "none"]

#: Output side of the first generator layer and of the last discriminator block.
BASE = 4


def num_stride2_layers(resolution: int) -> int:
    """Stride-2 layers between 4x4 and ``resolution`` (3 for 32, 4 for 64, 5 for 128)."""
    if resolution not in RESOLUTIONS:
        raise ValueError(f"DCGAN is built for resolutions {RESOLUTIONS}, not {resolution}")
    return int(math.log2(resolution)) - 2


def _upsampling(config: DCGANConfig, c_in: int, c_out: int, bias: bool) -> list[nn.Module]:
    """The layer that doubles the size: the paper's fractionally-strided 4x4 conv (5x5
    with ``kernel=5``), or ``upsample="nearest"``'s 2x nearest-neighbour upsampling
    followed by a 3x3 conv."""
    if config.upsample == "nearest":
        return [
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(c_in, c_out, 3, 1, 1, bias=bias),
        ]
    if config.kernel == 5:
        # lib/ops.py's deconv with subsample 2, border 2 and a 5x5 kernel (faces/
        # train_uncond_dcgan.py lines 82-91) doubles the size: output_padding 1 here.
        return [nn.ConvTranspose2d(c_in, c_out, 5, 2, 2, output_padding=1, bias=bias)]
    return [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=bias)]


class Generator(nn.Module):
    """z -> project to 4x4 -> fractionally-strided 4x4 convs doubling -> Tanh image.

    With ``fc_hidden=N`` z first goes through a fully connected hidden layer of N units
    (``self.fc``: Linear, BatchNorm1d when ``batchnorm``, ReLU), which is then projected.
    With ``network="imagenet32"`` ``self.net`` is the authors' ImageNet-32 G (a dense
    projection of z with BatchNorm1d, then 3x3 transposed convs; see
    :func:`imagenet32.generator_layers`).
    """

    def __init__(self, config: DCGANConfig, channels: int, resolution: int) -> None:
        super().__init__()
        self.z_dim = config.z_dim
        # Registered first (its parameters come first, in forward order); None at the
        # paper's settings, so the module and parameter order is the paper's network's.
        self.fc: nn.Sequential | None = None
        if config.network == "imagenet32":
            imagenet32.check_image_shape(channels, resolution)
            #: What the projection takes: z (imagenet32's net flattens it first).
            self.projected = config.z_dim
            self.net = nn.Sequential(*imagenet32.generator_layers(config, channels))
            return
        n = num_stride2_layers(resolution)
        width = config.ngf * 2 ** (n - 1)
        bn = config.batchnorm
        if config.fc_hidden:
            self.fc = nn.Sequential(
                nn.Linear(config.z_dim, config.fc_hidden, bias=not bn),
                *([nn.BatchNorm1d(config.fc_hidden)] if bn else []),
                nn.ReLU(inplace=True),
            )
        #: What the projection takes: z, or the hidden layer's units.
        self.projected = config.fc_hidden or config.z_dim
        # The projection of z to a 4x4 map is a matrix multiply, written as a 4x4 transposed
        # convolution of a 1x1 input (as the paper's reference code does): no hidden FC layer.
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(self.projected, width, BASE, 1, 0, bias=not bn),
            *([nn.BatchNorm2d(width)] if bn else []),
            nn.ReLU(inplace=True),
        ]
        for _ in range(n - 1):
            layers += [
                *_upsampling(config, width, width // 2, bias=not bn),
                *([nn.BatchNorm2d(width // 2)] if bn else []),
                nn.ReLU(inplace=True),
            ]
            width //= 2
        out_bn = bn and config.bn_g_output
        layers += [
            *_upsampling(config, width, channels, bias=not out_bn),
            *([nn.BatchNorm2d(channels)] if out_bn else []),
            nn.Tanh(),
        ]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.fc is not None:
            z = self.fc(z)
        return self.net(z.view(z.shape[0], self.projected, 1, 1))


class Discriminator(nn.Module):
    """Image -> strided 4x4 convs halving to 4x4 -> one 4x4 conv to a single logit.

    The sigmoid lives in the loss (``binary_cross_entropy_with_logits``) for numerical
    stability; ``torch.sigmoid(logit)`` is the paper's D(x).

    ``downsample="maxpool"``/``"avgpool"``: each block is a 3x3 stride-1 conv (padding 1),
    its batchnorm and LeakyReLU, then a 2x2 stride-2 pooling (pooling after the
    nonlinearity, where conventional conv nets and Springenberg et al.'s all-convolutional
    baselines put it), so every block's output has the paper's size. ``fc_hidden=N``: the
    head is the last 4x4 map flattened, Linear to N units, BatchNorm1d when ``batchnorm``,
    LeakyReLU, Linear to the logit.

    ``norm`` chooses what normalises D's layers: "batch" is DCGAN's BatchNorm where the
    config's switches put it (``batchnorm`` and ``d_batchnorm`` both on, ``bn_d_input``;
    the default, module for module the network above); "layer" is layer normalisation over
    each sample's channels and positions with a per-channel scale and shift (``GroupNorm``
    with one group: what Gulrajani et al.'s code calls its critic's layer norm) at the same
    layers, whatever ``batchnorm`` says (which then switches G's alone), keeping each
    sample's output a function of that sample alone, as a per-sample gradient penalty
    needs; "none" leaves D unnormalised (every convolution with its bias). For spectral
    normalisation see :func:`add_spectral_norm`.

    ``kernel=5``: the strided convs are 5x5 with padding 2 (the authors' Theano code),
    halving as the 4x4 ones do. ``network="imagenet32"``: the authors' ImageNet-32 D, six
    3x3 conv blocks (strides 1, 2, 1, 2, 1, 2; :mod:`imagenet32`), the same norms where the
    authors have batchnorm, and a bias-free 4x4 conv to the logit; its input conv and
    logit have no bias whatever ``norm`` says, as the authors'.
    """

    def __init__(
        self, config: DCGANConfig, channels: int, resolution: int, *, norm: DNorm = "batch"
    ) -> None:
        super().__init__()
        if norm not in ("batch", "layer", "none"):
            raise ValueError(f"norm must be batch, layer or none, not {norm!r}")
        bn = norm == "layer" or (norm == "batch" and config.batchnorm and config.d_batchnorm)
        in_bn = bn and config.bn_d_input
        if config.network == "imagenet32":
            blocks = self._imagenet32_blocks(config, channels, resolution, bn, in_bn, norm)
            width = imagenet32.discriminator_widths(config.ndf)[-1]
        else:
            n = num_stride2_layers(resolution)
            blocks = [self._block(config, channels, config.ndf, in_bn, norm)]
            width = config.ndf
            for _ in range(n - 1):
                blocks.append(self._block(config, width, width * 2, bn, norm))
                width *= 2
        #: The feature layers, one per strided conv (imagenet32: one per conv): what the
        #: paper's probe pools.
        self.blocks = nn.ModuleList(blocks)
        self.head: nn.Module
        if config.fc_hidden:
            self.head = nn.Sequential(
                nn.Flatten(),
                nn.Linear(width * BASE * BASE, config.fc_hidden, bias=not bn),
                *([_norm_layer(norm, config.fc_hidden, 1)] if bn else []),
                nn.LeakyReLU(config.leaky_slope, inplace=True),
                nn.Linear(config.fc_hidden, 1),
            )
        else:
            # the authors' imagenet32 logit is a dot product without bias (wy alone)
            self.head = nn.Conv2d(width, 1, BASE, 1, 0, bias=config.network == "paper")

    @classmethod
    def _imagenet32_blocks(
        cls,
        config: DCGANConfig,
        channels: int,
        resolution: int,
        bn: bool,
        in_bn: bool,
        norm: DNorm,
    ) -> list[nn.Sequential]:
        """load_pretrained.py lines 56-61: six 3x3 convs, normalised as the switches say
        (the input layer as D's input layer, without bias either way, as the authors')."""
        imagenet32.check_image_shape(channels, resolution)
        widths = imagenet32.discriminator_widths(config.ndf)
        ins = (channels, *widths[:-1])
        blocks = []
        for i, (c_in, c_out, stride) in enumerate(
            zip(ins, widths, imagenet32.D_STRIDES, strict=True)
        ):
            normalised = in_bn if i == 0 else bn
            conv = imagenet32.conv(c_in, c_out, stride, bias=i > 0 and not normalised)
            blocks.append(cls._block(config, c_in, c_out, normalised, norm, conv=conv))
        return blocks

    @staticmethod
    def _block(
        config: DCGANConfig,
        c_in: int,
        c_out: int,
        bn: bool,
        norm: DNorm = "batch",
        conv: nn.Conv2d | None = None,
    ) -> nn.Sequential:
        """One layer halving the size: a strided conv, or a conv then a pooling; ``bn``:
        normalised, by ``norm``. ``conv``: the block's conv, given (imagenet32's)."""
        pooled = config.downsample != "strided"
        if conv is None and pooled:
            conv = nn.Conv2d(c_in, c_out, 3, 1, 1, bias=not bn)
        elif conv is None:
            # 4x4 stride 2 padding 1 (PyTorch's reference); the authors' 5x5 stride 2
            # padding 2 (svhn_semisup_analysis.py line 56) halves the same sizes
            k = config.kernel
            conv = nn.Conv2d(c_in, c_out, k, 2, (k - 1) // 2, bias=not bn)
        pool = {"maxpool": nn.MaxPool2d, "avgpool": nn.AvgPool2d}
        return nn.Sequential(
            conv,
            *([_norm_layer(norm, c_out, 2)] if bn else []),
            nn.LeakyReLU(config.leaky_slope, inplace=True),
            *([pool[config.downsample](2, 2)] if pooled else []),
        )

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The activation of every conv layer (before the final logit; pooled, with
        ``downsample`` pooling), one map per block, each half the size of the one before
        (imagenet32: the size of its block's stride)."""
        out = []
        for block in self.blocks:
            x = block(x)
            out.append(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.head(x).flatten()


def _norm_layer(norm: DNorm, channels: int, dims: int) -> nn.Module:
    """D's normalisation of ``channels`` features: of maps (``dims`` 2) or vectors (1)."""
    if norm == "layer":
        # one group: mean and variance over all of a sample's features, per-channel affine
        return nn.GroupNorm(1, channels)
    return nn.BatchNorm2d(channels) if dims == 2 else nn.BatchNorm1d(channels)


def add_spectral_norm(module: nn.Module) -> nn.Module:
    """Miyato et al.'s spectral normalisation (arXiv 1802.05957) on every convolution and
    linear layer of ``module``: each weight W is used as W / sigma(W), sigma estimated
    by one power iteration per forward in training mode (torch's parametrization, as
    the paper's Algorithm 1). The iteration's vectors u and v are buffers, so they are
    in the state dict, in checkpoints, and a resume continues them exactly.

    Call it after :func:`init_weights`: registering runs 15 power iterations from random
    u, v (drawn from torch's global generator, so seeded) on the weights as they are
    then. Returns ``module``."""
    for m in list(module.modules()):
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            spectral_norm(m)
    return module


@torch.no_grad()
def init_weights(module: nn.Module, std: float) -> None:
    """Sec. 4: conv and linear weights from N(0, std), biases zero; batchnorm scale
    N(1, std), shifts zero."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)
