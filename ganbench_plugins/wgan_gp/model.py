"""WGAN-GP: a Wasserstein critic with a gradient penalty on DCGAN's networks (Gulrajani,
Ahmed, Arjovsky, Dumoulin, Courville 2017)."""

from __future__ import annotations

import torch

from ganbench.training import losses
from ganbench_plugins.dcgan.model import DCGAN
from ganbench_plugins.dcgan.networks import DNorm
from ganbench_plugins.wgan_gp.config import WGANGPConfig


class WGANGP(DCGAN):
    """Algorithm 1 on the DCGAN backbone: n_critic critic updates, each on its own real
    batch and latents with the penalty on their interpolates, then one G update on fresh
    latents. ``d_real``/``d_fake`` are the critic's mean raw outputs (their difference is
    the Wasserstein estimate); ``d_penalty`` is the penalty, already in ``loss_d``."""

    config: WGANGPConfig

    def discriminator_norm(self) -> DNorm:
        return self.config.d_norm

    def d_loss(self, out_real: torch.Tensor, out_fake: torch.Tensor) -> torch.Tensor:
        return losses.wasserstein_d(out_real, out_fake)

    def g_loss(self, out_gen: torch.Tensor) -> torch.Tensor:
        return losses.wasserstein_g(out_gen)

    def d_output(self, out: torch.Tensor) -> torch.Tensor:
        """The critic's raw output (a score, not a probability)."""
        return out

    def d_penalty(
        self, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor | None = None
    ) -> torch.Tensor | None:
        return self.gradient_penalty(real, fake, labels, self.config.gp_weight)
