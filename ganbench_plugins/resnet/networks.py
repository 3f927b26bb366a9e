"""The ResNet generators and discriminators of SNGAN and WGAN-GP, and
:func:`build_networks`, which builds any backbone of the family for a config.

Layouts (:data:`LAYOUTS`; widths before the config's ``g_width``/``d_width`` multipliers):

- resnet, 32 px: Miyato et al. 2018 (arXiv 1802.05957), Appendix B, Table 4;
  pfnet-research/sngan_projection gen_models/resnet_32.py (ch=256) and
  dis_models/snresnet_32.py (ch=128), as configs/sn_cifar10_*.yml build them.
- resnet, 48 px: Table 5 (STL-10): G from a 6x6x512 map through 256, 128, 64; D 64, 128,
  256, 512 (each halving), 1024 (google/compare_gan resnet_stl.py and kwotsin/mimicry
  sngan_48.py build the same).
- resnet, 64 px: gen_models/resnet_64.py, dis_models/snresnet_64.py (ch=64,
  configs/sn_projection_64.yml).
- resnet, 128 px: gen_models/resnet.py, dis_models/snresnet.py (ch=64,
  configs/sn_projection.yml).
- wgan_gp_resnet, 32 px: Gulrajani et al. 2017, igul222/improved_wgan_training
  gan_cifar_resnet.py lines 151-179 (DIM_G = DIM_D = 128): the SNGAN 32 px layout at
  128 channels in G, D's features averaged (``reduce_mean``, line 172) instead of summed,
  and a bias in D's output layer.

G: z -> linear -> bottom x bottom x c0 -> up-blocks -> BN-ReLU-conv3x3 -> tanh; the
linear and the output conv are Glorot-uniform with gain 1 (resnet_32.py lines 17, 22),
their biases 0. D: an optimised block, then blocks, ReLU, global sum (mean) pooling to
phi(x), then :class:`~ganbench_plugins.resnet.layers.DiscriminatorHead`.

Outputs: ``G(z, y=None)`` gives images in [-1, 1] (``y``, int64 labels, required when
the generator is conditional); ``D(x, y=None)`` gives one value per image, (N,); ``D(x, y,
class_logits=True)`` gives a :class:`~ganbench_plugins.resnet.layers.DiscriminatorOutput`
(adversarial, class_logits) for an ACGAN loss. The flag is a Python bool fixed at each
call site, so torch.compile specialises on it and a captured CUDA graph never branches.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ganbench.plugins.interfaces import ImageShape
from ganbench_plugins.resnet.blocks import DBlock, GBlock, OptimizedDBlock
from ganbench_plugins.resnet.cnn import StandardCNNDiscriminator, StandardCNNGenerator, widen
from ganbench_plugins.resnet.config import ResNetConfig, check_image_shape
from ganbench_plugins.resnet.layers import (
    BlockStack,
    DiscriminatorHead,
    DiscriminatorOutput,
    discriminate,
    glorot_,
    spectral_normalize,
)


@dataclass(frozen=True)
class ResNetLayout:
    """One reference's G and D at one resolution."""

    #: Side of G's first feature map.
    bottom: int
    #: G's widths: the linear layer's map, then each up-block's output.
    g_channels: tuple[int, ...]
    #: D's widths: the optimised block's, then each block's.
    d_channels: tuple[int, ...]
    #: Whether each D block halves the size (the optimised block always does).
    d_downsample: tuple[bool, ...]
    #: How D pools its last map to phi(x): SNGAN sums, WGAN-GP averages.
    pooling: Literal["sum", "mean"]
    #: Whether D's output layer has a bias (snresnet_32.py line 17: ``nobias=True``).
    d_bias: bool


_T, _F = True, False
LAYOUTS: dict[tuple[str, int], ResNetLayout] = {
    ("resnet", 32): ResNetLayout(4, (256,) * 4, (128,) * 4, (_T, _T, _F, _F), "sum", False),
    ("resnet", 48): ResNetLayout(
        6, (512, 256, 128, 64), (64, 128, 256, 512, 1024), (_T, _T, _T, _T, _F), "sum", True
    ),
    ("resnet", 64): ResNetLayout(
        4, (1024, 512, 256, 128, 64), (64, 128, 256, 512, 1024), (_T,) * 5, "sum", True
    ),
    ("resnet", 128): ResNetLayout(
        4,
        (1024, 1024, 512, 256, 128, 64),
        (64, 128, 256, 512, 1024, 1024),
        (_T, _T, _T, _T, _T, _F),
        "sum",
        True,
    ),
    ("wgan_gp_resnet", 32): ResNetLayout(4, (128,) * 4, (128,) * 4, (_T, _T, _F, _F), "mean", True),
}


class ResNetGenerator(nn.Module):
    """The SNGAN / WGAN-GP ResNet generator; class-conditional batchnorm in its blocks
    when ``num_classes`` > 0 (the output batchnorm stays plain: resnet_32.py line 21,
    gan_cifar_resnet.py line 159)."""

    def __init__(
        self,
        layout: ResNetLayout,
        z_dim: int,
        channels: int,
        num_classes: int = 0,
        width: float = 1.0,
    ) -> None:
        super().__init__()
        self.z_dim, self.num_classes, self.bottom = z_dim, num_classes, layout.bottom
        widths = [widen(c, width) for c in layout.g_channels]
        self.linear = nn.Linear(z_dim, layout.bottom**2 * widths[0])
        #: The up-blocks (what a probe reads: each makes feature maps).
        self.blocks = nn.ModuleList(
            GBlock(c_in, c_out, num_classes) for c_in, c_out in pairwise(widths)
        )
        self.b_out = nn.BatchNorm2d(widths[-1])
        self.c_out = nn.Conv2d(widths[-1], channels, 3, 1, 1)
        glorot_(self.linear)
        glorot_(self.c_out)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes and y is None:
            raise ValueError("a class-conditional generator needs the labels y")
        h = self.linear(z.flatten(1)).view(z.shape[0], -1, self.bottom, self.bottom)
        for block in self.blocks:
            h = block(h, y)
        return torch.tanh(self.c_out(F.relu(self.b_out(h))))


class ResNetDiscriminator(BlockStack):
    """The SNGAN / WGAN-GP ResNet discriminator with its conditioning head
    ("none", "projection" or "acgan"); spectral normalisation is added by
    :func:`~ganbench_plugins.resnet.layers.spectral_normalize` after construction."""

    def __init__(
        self,
        layout: ResNetLayout,
        channels: int,
        num_classes: int = 0,
        conditioning: str = "none",
        width: float = 1.0,
    ) -> None:
        super().__init__()
        widths = [widen(c, width) for c in layout.d_channels]
        if not layout.d_downsample[0]:
            raise ValueError("D's first (optimised) block always halves the size")
        blocks: list[nn.Module] = [OptimizedDBlock(channels, widths[0])]
        for (c_in, c_out), down in zip(pairwise(widths), layout.d_downsample[1:], strict=True):
            blocks.append(DBlock(c_in, c_out, downsample=down))
        #: The residual blocks, in order (what a probe reads).
        self.blocks = nn.ModuleList(blocks)
        self.pooling = layout.pooling
        self.head = DiscriminatorHead(widths[-1], num_classes, conditioning, bias=layout.d_bias)
        self.head.reset_parameters()

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """phi(x), (N, F): the last block's output through ReLU, summed (SNGAN) or
        averaged (WGAN-GP) over positions: what the head reads."""
        h = F.relu(self.last_map(x))
        return h.sum((2, 3)) if self.pooling == "sum" else h.mean((2, 3))

    def forward(
        self, x: torch.Tensor, y: torch.Tensor | None = None, *, class_logits: bool = False
    ) -> torch.Tensor | DiscriminatorOutput:
        return discriminate(self.head, self.pooled(x), y, class_logits)


def build_networks(config: ResNetConfig, shape: ImageShape) -> tuple[nn.Module, nn.Module]:
    """A freshly initialised (G, D) of ``config``'s backbone for images of ``shape``
    (on the CPU), conditional on ``shape.num_classes`` classes unless
    ``conditional=none``; D spectrally normalised when ``spectral_norm``."""
    check_image_shape(config, shape)
    num_classes = shape.num_classes if config.conditioned else 0
    G: nn.Module
    D: nn.Module
    if config.backbone == "standard_cnn":
        G = StandardCNNGenerator(
            config.z_dim, shape.channels, shape.resolution, num_classes, config.g_width
        )
        D = StandardCNNDiscriminator(
            shape.channels, shape.resolution, num_classes, config.conditional, config.d_width
        )
    else:
        layout = LAYOUTS[(config.backbone, shape.resolution)]
        G = ResNetGenerator(layout, config.z_dim, shape.channels, num_classes, config.g_width)
        D = ResNetDiscriminator(
            layout, shape.channels, num_classes, config.conditional, config.d_width
        )
    if config.spectral_norm:
        spectral_normalize(D)
    return G, D
