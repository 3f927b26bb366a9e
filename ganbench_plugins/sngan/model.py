"""SNGAN: spectrally normalised D with the hinge loss on DCGAN's networks (Miyato,
Kataoka, Koyama, Yoshida 2018)."""

from __future__ import annotations

import torch

from ganbench.training import losses
from ganbench_plugins.dcgan.model import DCGAN
from ganbench_plugins.dcgan.networks import DNorm
from ganbench_plugins.sngan.config import SNGANConfig


class SNGAN(DCGAN):
    """Every D convolution and linear layer spectrally normalised (one power iteration
    per training forward; the u, v vectors are buffers, so checkpoints hold them), no
    normalisation layer in D. ``d_real``/``d_fake`` are D's mean raw outputs with the
    hinge loss, D(x) as a probability with the cross-entropy."""

    config: SNGANConfig
    spectral_norm = True

    def discriminator_norm(self) -> DNorm:
        return "none"

    def d_loss(self, out_real: torch.Tensor, out_fake: torch.Tensor) -> torch.Tensor:
        if self.config.loss == "hinge":
            return losses.hinge_d(out_real, out_fake)
        return losses.bce_d(out_real, out_fake)

    def g_loss(self, out_gen: torch.Tensor) -> torch.Tensor:
        if self.config.loss == "hinge":
            return losses.hinge_g(out_gen)
        return losses.non_saturating_g(out_gen)

    def d_output(self, out: torch.Tensor) -> torch.Tensor:
        return out if self.config.loss == "hinge" else torch.sigmoid(out)
