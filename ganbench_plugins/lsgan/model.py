"""LSGAN: DCGAN's networks and step with the least-squares loss (Mao et al. 2017)."""

from __future__ import annotations

import torch

from ganbench.training import losses
from ganbench_plugins.dcgan.model import DCGAN
from ganbench_plugins.lsgan.config import LSGANConfig


class LSGAN(DCGAN):
    """D regresses its raw output onto b for real and a for generated images; G pulls
    D's output on its images towards c."""

    config: LSGANConfig

    def d_loss(self, out_real: torch.Tensor, out_fake: torch.Tensor) -> torch.Tensor:
        return losses.least_squares_d(out_real, out_fake, self.config.a, self.config.b)

    def g_loss(self, out_gen: torch.Tensor) -> torch.Tensor:
        return losses.least_squares_g(out_gen, self.config.c)

    def d_output(self, out: torch.Tensor) -> torch.Tensor:
        """D's raw output (it is regressed onto a and b, not a probability)."""
        return out
