"""The DCGAN generator and discriminator, built for any power-of-two resolution.

The paper's guidelines (Sec. 3): strided convolutions in D and fractionally-strided ones in G
instead of pooling; batchnorm in both except G's output and D's input layer; no fully
connected hidden layers; ReLU in G with a Tanh output; LeakyReLU(0.2) in D. The number of
layers follows from the resolution: each 4x4 stride-2 layer doubles (G) or halves (D) it.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ganbench_plugins.dcgan.config import RESOLUTIONS, DCGANConfig


def num_stride2_layers(resolution: int) -> int:
    """Stride-2 layers between 4x4 and ``resolution`` (3 for 32, 4 for 64, 5 for 128)."""
    if resolution not in RESOLUTIONS:
        raise ValueError(f"DCGAN is built for resolutions {RESOLUTIONS}, not {resolution}")
    return int(math.log2(resolution)) - 2


class Generator(nn.Module):
    """z -> project to 4x4 -> fractionally-strided 4x4 convs doubling -> Tanh image."""

    def __init__(self, config: DCGANConfig, channels: int, resolution: int) -> None:
        super().__init__()
        self.z_dim = config.z_dim
        n = num_stride2_layers(resolution)
        width = config.ngf * 2 ** (n - 1)
        bn = config.batchnorm
        # The projection of z to a 4x4 map is a matrix multiply, written as a 4x4 transposed
        # convolution of a 1x1 input (as the paper's reference code does): no hidden FC layer.
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(config.z_dim, width, 4, 1, 0, bias=not bn),
            *([nn.BatchNorm2d(width)] if bn else []),
            nn.ReLU(inplace=True),
        ]
        for _ in range(n - 1):
            layers += [
                nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=not bn),
                *([nn.BatchNorm2d(width // 2)] if bn else []),
                nn.ReLU(inplace=True),
            ]
            width //= 2
        out_bn = bn and config.bn_g_output
        layers += [
            nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=not out_bn),
            *([nn.BatchNorm2d(channels)] if out_bn else []),
            nn.Tanh(),
        ]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(z.shape[0], self.z_dim, 1, 1))


class Discriminator(nn.Module):
    """Image -> strided 4x4 convs halving to 4x4 -> one 4x4 conv to a single logit.

    The sigmoid lives in the loss (``binary_cross_entropy_with_logits``) for numerical
    stability; ``torch.sigmoid(logit)`` is the paper's D(x).
    """

    def __init__(self, config: DCGANConfig, channels: int, resolution: int) -> None:
        super().__init__()
        n = num_stride2_layers(resolution)
        bn = config.batchnorm
        in_bn = bn and config.bn_d_input
        blocks = [
            nn.Sequential(
                nn.Conv2d(channels, config.ndf, 4, 2, 1, bias=not in_bn),
                *([nn.BatchNorm2d(config.ndf)] if in_bn else []),
                nn.LeakyReLU(config.leaky_slope, inplace=True),
            )
        ]
        width = config.ndf
        for _ in range(n - 1):
            blocks.append(
                nn.Sequential(
                    nn.Conv2d(width, width * 2, 4, 2, 1, bias=not bn),
                    *([nn.BatchNorm2d(width * 2)] if bn else []),
                    nn.LeakyReLU(config.leaky_slope, inplace=True),
                )
            )
            width *= 2
        #: The feature layers, one per stride-2 conv (what the paper's probe pools).
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv2d(width, 1, 4, 1, 0)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The activation of every conv layer (before the final logit)."""
        out = []
        for block in self.blocks:
            x = block(x)
            out.append(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.head(x).flatten()


@torch.no_grad()
def init_weights(module: nn.Module, std: float) -> None:
    """Sec. 4: conv weights from N(0, std); batchnorm scale N(1, std), shifts zero."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)
