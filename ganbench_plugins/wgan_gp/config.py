"""WGAN-GP hyperparameters: DCGAN's backbone, Gulrajani et al.'s critic (arXiv 1704.00028)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ganbench.errors import ConfigError
from ganbench.hparams import ranged
from ganbench_plugins.dcgan.config import N_CRITIC, DCGANConfig


@dataclass
class WGANGPConfig(DCGANConfig):
    """DCGAN's networks with the Wasserstein loss, the gradient penalty and the paper's
    optimiser settings; every backbone field keeps DCGAN's default. The defaults are
    those of the paper's Algorithm 1 ("default values lambda = 10, n_critic = 5,
    alpha = 0.0001, beta1 = 0, beta2 = 0.9")."""

    #: Adam, Algorithm 1: alpha = 0.0001, beta1 = 0, beta2 = 0.9.
    lr: float = ranged(0.0001, gt=0)
    beta1: float = ranged(0.0, ge=0, lt=1)
    beta2: float = ranged(0.9, ge=0, lt=1)
    #: The critic minimises E[D(G(z))] - E[D(x)] + the penalty, G minimises -E[D(G(z))]
    #: (Algorithm 1, lines 7 and 12), on the critic's raw output.
    loss: Literal["wasserstein"] = "wasserstein"
    #: lambda, the penalty's weight (Sec. 4, "we use lambda = 10" in all experiments).
    gp_weight: float = ranged(10.0, ge=0, text="0 or more")
    #: Critic updates per G update, each on a fresh real batch (Algorithm 1, n_critic).
    n_critic: int = ranged(5, ge=1, text=N_CRITIC)
    #: What replaces batchnorm in the critic, at the layers DCGAN's batchnorm takes (all
    #: but the input layer, unless bn_d_input): Sec. 4 ("No critic batch normalization")
    #: recommends layer normalization as a drop-in replacement; "none" leaves the critic
    #: unnormalised. Batchnorm itself is not offered: it makes each sample's output
    #: depend on the batch, which the per-sample penalty does not allow. G keeps its
    #: batchnorm, as in the paper; ``batchnorm`` switches G's alone.
    d_norm: Literal["layer", "none"] = "layer"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.d_batchnorm:
            raise ConfigError(
                "d_batchnorm=false does not apply to WGAN-GP: its critic has no batchnorm"
                " (d_norm replaces it, layer norm by default); use d_norm=none for an"
                " unnormalised critic"
            )
        if not self.gp_weight >= 0:
            raise ConfigError(f"gp_weight must be 0 or more; got {self.gp_weight!r}")
