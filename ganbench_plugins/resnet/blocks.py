"""The residual blocks of the SNGAN and WGAN-GP ResNets (pre-activation, 3x3 convolutions).

Both references build the same blocks: Miyato et al.'s (pfnet-research/sngan_projection
gen_models/resblocks.py, dis_models/resblocks.py) and Gulrajani et al.'s
(igul222/improved_wgan_training gan_cifar_resnet.py lines 105-149, ResidualBlock and
OptimizedResBlockDisc1, with NORMALIZATION_D = False). Upsampling is 2x nearest neighbour
(Chainer's unpooling_2d; tflib's depth_to_space of four copies), downsampling 2x2 average
pooling (ConvMeanPool / MeanPoolConv).

Initialisation, as both references: the residual 3x3 convolutions Glorot-uniform with gain
sqrt(2) (resblocks.py ``GlorotUniform(math.sqrt(2))``; tflib's ``he_init=True`` is
uniform with stdev sqrt(4 / (fan_in + fan_out)), the same), the 1x1 shortcuts with gain 1
(``initializer_sc``; ``he_init=False``), biases zero.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ganbench_plugins.resnet.layers import ConditionalBatchNorm2d, glorot_

#: Gain of the residual branch's convolutions (Glorot-uniform).
RESIDUAL_GAIN = math.sqrt(2)


def upsample(x: torch.Tensor) -> torch.Tensor:
    """2x nearest-neighbour upsampling."""
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


class GBlock(nn.Module):
    """G's up-block: BN-ReLU-upsample-conv3x3-BN-ReLU-conv3x3, plus the shortcut
    upsample-conv1x1 (gen_models/resblocks.py lines 40-58; the shortcut is learned
    because the block upsamples). With ``num_classes`` the two batchnorms are
    class-conditional (lines 31-33). The hidden width is ``c_out`` (line 26)."""

    def __init__(self, c_in: int, c_out: int, num_classes: int = 0) -> None:
        super().__init__()
        self.b1 = ConditionalBatchNorm2d(c_in, num_classes)
        self.c1 = nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.b2 = ConditionalBatchNorm2d(c_out, num_classes)
        self.c2 = nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.c_sc = nn.Conv2d(c_in, c_out, 1, 1, 0)
        glorot_(self.c1, RESIDUAL_GAIN)
        glorot_(self.c2, RESIDUAL_GAIN)
        glorot_(self.c_sc)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.c1(upsample(F.relu(self.b1(x, y))))
        h = self.c2(F.relu(self.b2(h, y)))
        return h + self.c_sc(upsample(x))


class DBlock(nn.Module):
    """D's block: ReLU-conv3x3-ReLU-conv3x3[-avgpool], plus the shortcut conv1x1[-avgpool]
    when the block pools or changes the width, else the identity (dis_models/resblocks.py
    lines 12-49; gan_cifar_resnet.py lines 109-127). The hidden width is ``c_in`` (line
    21; the critic's conv_1 is input_dim -> input_dim)."""

    def __init__(self, c_in: int, c_out: int, *, downsample: bool) -> None:
        super().__init__()
        self.downsample = downsample
        self.c1 = nn.Conv2d(c_in, c_in, 3, 1, 1)
        self.c2 = nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.c_sc = nn.Conv2d(c_in, c_out, 1, 1, 0) if downsample or c_in != c_out else None
        glorot_(self.c1, RESIDUAL_GAIN)
        glorot_(self.c2, RESIDUAL_GAIN)
        if self.c_sc is not None:
            glorot_(self.c_sc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c2(F.relu(self.c1(F.relu(x))))
        shortcut = x if self.c_sc is None else self.c_sc(x)
        if self.downsample:
            h, shortcut = F.avg_pool2d(h, 2), F.avg_pool2d(shortcut, 2)
        return h + shortcut


class OptimizedDBlock(nn.Module):
    """D's first block, on the image: conv3x3-ReLU-conv3x3-avgpool, plus the shortcut
    avgpool-conv1x1 (no activation before the first conv: dis_models/resblocks.py lines
    52-75, OptimizedBlock; gan_cifar_resnet.py lines 139-149)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.c2 = nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.c_sc = nn.Conv2d(c_in, c_out, 1, 1, 0)
        glorot_(self.c1, RESIDUAL_GAIN)
        glorot_(self.c2, RESIDUAL_GAIN)
        glorot_(self.c_sc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.avg_pool2d(self.c2(F.relu(self.c1(x))), 2)
        return h + self.c_sc(F.avg_pool2d(x, 2))
