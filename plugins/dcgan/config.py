"""DCGAN hyperparameters; every default is the paper's (Radford et al., arXiv 1511.06434)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: Powers of two from 16 up: each stride-2 layer doubles (G) or halves (D) the size.
RESOLUTIONS = (16, 32, 64, 128, 256)


@dataclass
class DCGANConfig:
    """One DCGAN variant. The paper's ablations are switches here, not code forks."""

    #: Sec. 3: "a 100 dimensional uniform distribution Z".
    z_dim: int = 100
    #: The paper draws uniform noise in [-1, 1]; the PyTorch reference draws N(0, 1).
    z_distribution: Literal["uniform", "normal"] = "uniform"
    #: Generator width: channels of the last hidden layer (the 4x4 layer has ngf * 2^(n-1)).
    ngf: int = 64
    #: Discriminator width: channels of the first layer, doubling per layer.
    ndf: int = 64
    #: Sec. 4: Adam, lr 0.0002 ("0.001 too high"), beta1 0.5 ("0.9 ... instability").
    lr: float = 0.0002
    beta1: float = 0.5
    beta2: float = 0.999
    #: Sec. 4: "initialized from a zero-centered Normal distribution with standard deviation 0.02".
    init_std: float = 0.02
    #: Sec. 3: LeakyReLU "slope of the leak was set to 0.2".
    leaky_slope: float = 0.2
    #: Goodfellow et al.'s non-saturating generator loss, as DCGAN trained; or the minimax one.
    loss: Literal["non_saturating", "minimax"] = "non_saturating"
    #: Ablations (Sec. 3): batchnorm off altogether, or on G's output / D's input layer.
    batchnorm: bool = True
    bn_g_output: bool = False
    bn_d_input: bool = False
