"""LSGAN hyperparameters: DCGAN's backbone, Mao et al.'s loss (arXiv 1611.04076)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ganbench.errors import ConfigError
from ganbench.hparams import ranged
from ganbench_plugins.dcgan.config import N_CRITIC, DCGANConfig


@dataclass
class LSGANConfig(DCGANConfig):
    """DCGAN's networks and settings with the least-squares loss.

    Every backbone field (widths, latent prior, initialisation, the ablation switches)
    keeps DCGAN's default, so an LSGAN run differs from a DCGAN run in its loss alone.
    Adam stays DCGAN's (lr 0.0002, beta1 0.5): Mao et al. build on DCGAN and keep its
    beta1 of 0.5 (Sec. 4.1).
    """

    #: D minimises 1/2 E[(D(x) - b)^2] + 1/2 E[(D(G(z)) - a)^2], G minimises
    #: 1/2 E[(D(G(z)) - c)^2] (the paper's Eq. 2), on D's raw output (no sigmoid).
    loss: Literal["least_squares"] = "least_squares"
    #: The coding of Sec. 3.2.3 ("Parameters selection"): a labels fake images, b real
    #: ones, c is the value G wants D to believe for its images. Two choices are given:
    #: a = -1, b = 1, c = 0 (Eq. 8 of arXiv v3), which satisfies b - c = 1 and b - a = 2,
    #: the conditions under which G minimises the Pearson chi^2 divergence of Sec. 3.2.2;
    #: and the 0-1 binary coding a = 0, b = c = 1 (Eq. 9), which the paper's experiments
    #: use, and the default here. (The later journal version, arXiv 1712.06391, reports
    #: the chi^2 coding doing better: --set a=-1 --set c=0.)
    a: float = 0.0
    b: float = 1.0
    c: float = 1.0
    #: D updates per G update, each on its own real batch (the paper trains one to one).
    n_critic: int = ranged(1, ge=1, text=N_CRITIC)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.a == self.b:
            raise ConfigError(
                f"a and b code fake and real images and must differ; both are {self.a}"
            )
