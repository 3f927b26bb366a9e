"""SNGAN hyperparameters: DCGAN's backbone, Miyato et al.'s D (arXiv 1802.05957)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ganbench.errors import ConfigError
from ganbench.hparams import ranged
from ganbench_plugins.dcgan.config import N_CRITIC, DCGANConfig


@dataclass
class SNGANConfig(DCGANConfig):
    """DCGAN's networks with spectral normalisation on every D layer in place of D's
    batchnorm, the hinge loss and the paper's Adam setting; every backbone field keeps
    DCGAN's default (G keeps its batchnorm, as the paper's standard CNN does)."""

    #: Adam, setting C of the paper's Table 1: alpha = 0.0002, beta1 = 0.5, beta2 = 0.999
    #: with n_dis = 1 (also DCGAN's setting).
    lr: float = ranged(0.0002, gt=0)
    beta1: float = ranged(0.5, ge=0, lt=1)
    beta2: float = ranged(0.999, ge=0, lt=1)
    #: "hinge": the hinge loss of Eq. (17), D minimises E[max(0, 1 - D(x))] +
    #: E[max(0, 1 + D(G(z)))], G minimises -E[D(G(z))]; "non_saturating": the paper's
    #: other, "standard" objective (DCGAN's cross-entropy and G loss).
    loss: Literal["hinge", "non_saturating"] = "hinge"
    #: n_dis, D updates per G update, each on its own real batch (setting C: 1).
    n_critic: int = ranged(1, ge=1, text=N_CRITIC)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.d_batchnorm:
            raise ConfigError(
                "d_batchnorm=false does not apply to SNGAN: its D has no batchnorm (spectral"
                " normalisation replaces it), so there is none to switch off"
            )
