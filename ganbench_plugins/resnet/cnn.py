"""SNGAN's "standard CNN" (Miyato et al. 2018, arXiv 1802.05957, Appendix B, Table 3), at
32 px (CIFAR-10, SVHN: M_g = 4) and 48 px (STL-10: M_g = 6).

G: z -> dense to M_g x M_g x 512 (batchnorm, ReLU) -> three 4x4 stride-2 transposed
convolutions (512 -> 256 -> 128 -> 64, each with batchnorm and ReLU) -> 3x3 conv -> tanh.
D: 3x3 conv 64, 4x4 stride-2 conv 64, 3x3 conv 128, 4x4 stride-2 conv 128, 3x3 conv 256,
4x4 stride-2 conv 256, 3x3 conv 512, each followed by LeakyReLU with slope 0.1 (the
table's caption), then a dense layer on the flattened M/8 x M/8 x 512 map.

Deviations, documented: the authors' Chainer code of this network (pfnet-research/
chainer-gan-lib common/net.py, DCGANGenerator lines 55-106 and SNDCGANDiscriminator lines
199-221) is followed where the table is silent: a batchnorm and ReLU after G's dense
layer (over each of its units: line 100), biases in every layer, N(0, 0.02) initial
weights (``wscale=0.02``). Where the two disagree the table wins: that D doubles its width
at the 3x3 convs (64, 64, 128, 128, 256, 256, 512; chainer-gan-lib and google/compare_gan
sndcgan.py double it at the strided ones: 64, 128, 128, 256, 256, 512, 512) and its
LeakyReLU slope is 0.1 (chainer-gan-lib: Chainer's default 0.2). Class conditioning, which
the table does not have: G's three transposed-conv batchnorms become class-conditional
(as in the ResNet's blocks; the dense layer's batchnorm stays plain, as the ResNet's
output batchnorm does), D gets the projection or ACGAN head on the flattened features.
"""

from __future__ import annotations

from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from ganbench_plugins.resnet.layers import (
    BlockStack,
    ConditionalBatchNorm2d,
    DiscriminatorHead,
    DiscriminatorOutput,
    discriminate,
)

#: Side of G's first feature map (and of D's last, /8), by resolution.
BOTTOM = {32: 4, 48: 6}
#: Table 3: G's widths, the dense layer's then each transposed convolution's.
G_CHANNELS = (512, 256, 128, 64)
#: Table 3: D's seven convolutions: (width, stride).
D_LAYERS = ((64, 1), (64, 2), (128, 1), (128, 2), (256, 1), (256, 2), (512, 1))
#: Table 3's caption: "The slopes of all lReLU functions in the networks are set to 0.1".
LEAKY_SLOPE = 0.1
#: chainer-gan-lib's ``wscale``: the initial weights' standard deviation.
INIT_STD = 0.02


def widen(channels: int, width: float) -> int:
    """A reference width scaled by a config's width multiplier (at least 1)."""
    return max(1, round(channels * width))


class UpStage(nn.Module):
    """One 4x4 stride-2 transposed convolution, its (conditional) batchnorm and ReLU."""

    def __init__(self, c_in: int, c_out: int, num_classes: int) -> None:
        super().__init__()
        self.deconv = nn.ConvTranspose2d(c_in, c_out, 4, 2, 1)
        self.bn = ConditionalBatchNorm2d(c_out, num_classes)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return F.relu(self.bn(self.deconv(x), y))


class StandardCNNGenerator(nn.Module):
    """Table 3 (a). ``forward(z, y=None)``: images in [-1, 1]; ``y`` (int64 labels) is
    required when ``num_classes`` > 0."""

    def __init__(
        self, z_dim: int, channels: int, resolution: int, num_classes: int = 0, width: float = 1.0
    ) -> None:
        super().__init__()
        self.z_dim, self.num_classes = z_dim, num_classes
        self.bottom = BOTTOM[resolution]
        widths = [widen(c, width) for c in G_CHANNELS]
        units = self.bottom**2 * widths[0]
        self.dense = nn.Sequential(nn.Linear(z_dim, units), nn.BatchNorm1d(units), nn.ReLU())
        #: The three upsampling stages (what a probe reads: each makes feature maps).
        self.blocks = nn.ModuleList(
            UpStage(c_in, c_out, num_classes) for c_in, c_out in pairwise(widths)
        )
        self.c_out = nn.Conv2d(widths[-1], channels, 3, 1, 1)
        init_normal(self)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes and y is None:
            raise ValueError("a class-conditional generator needs the labels y")
        h = self.dense(z.flatten(1)).view(z.shape[0], -1, self.bottom, self.bottom)
        for block in self.blocks:
            h = block(h, y)
        return torch.tanh(self.c_out(h))


class StandardCNNDiscriminator(BlockStack):
    """Table 3 (b), with the conditioning head of :class:`DiscriminatorHead` on the
    flattened last map. ``forward(x, y=None, *, class_logits=False)``: the adversarial
    output (N,), or with ``class_logits`` (ACGAN) a :class:`DiscriminatorOutput`."""

    def __init__(
        self,
        channels: int,
        resolution: int,
        num_classes: int = 0,
        conditioning: str = "none",
        width: float = 1.0,
    ) -> None:
        super().__init__()
        blocks, c_in = [], channels
        for c, stride in D_LAYERS:
            c_out = widen(c, width)
            conv = nn.Conv2d(c_in, c_out, 3 if stride == 1 else 4, stride, 1)
            blocks.append(nn.Sequential(conv, nn.LeakyReLU(LEAKY_SLOPE)))
            c_in = c_out
        #: The seven conv layers, each with its LeakyReLU (what a probe reads).
        self.blocks = nn.ModuleList(blocks)
        features = c_in * (resolution // 8) ** 2
        self.head = DiscriminatorHead(features, num_classes, conditioning, bias=True)
        init_normal(self)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """phi(x): the last map flattened, (N, F): what the head reads."""
        return self.last_map(x).flatten(1)

    def forward(
        self, x: torch.Tensor, y: torch.Tensor | None = None, *, class_logits: bool = False
    ) -> torch.Tensor | DiscriminatorOutput:
        return discriminate(self.head, self.pooled(x), y, class_logits)


@torch.no_grad()
def init_normal(module: nn.Module) -> None:
    """Convolution, transposed-convolution and linear weights from N(0, 0.02), biases 0
    (chainer-gan-lib's ``initialW=Normal(wscale)``; Chainer's zero initial biases). The
    projection embedding too; conditional batchnorm keeps its 1 and 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, INIT_STD)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, DiscriminatorHead) and m.embed is not None:
            nn.init.normal_(m.embed.weight, 0.0, INIT_STD)
