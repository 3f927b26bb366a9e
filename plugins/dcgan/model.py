"""A DCGAN with its optimizers and the paper's alternating training step."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from ganbench.interfaces import GanModel, ImageShape
from ganbench_plugins.dcgan.config import DCGANConfig
from ganbench_plugins.dcgan.networks import Discriminator, Generator, init_weights


def sample_latent(
    config: DCGANConfig, n: int, *, generator: torch.Generator | None = None, device: Any = None
) -> torch.Tensor:
    """``n`` latent vectors, uniform in [-1, 1] (the paper) or standard normal."""
    if config.z_distribution == "uniform":
        z = torch.rand(n, config.z_dim, generator=generator, device=device) * 2 - 1
    else:
        z = torch.randn(n, config.z_dim, generator=generator, device=device)
    return z


class DCGAN(GanModel):
    """Generator, discriminator and their Adam optimizers."""

    def __init__(self, config: DCGANConfig, shape: ImageShape) -> None:
        self.config = config
        self.shape = shape
        self.z_dim = config.z_dim
        self.latent_distribution = config.z_distribution
        self.generator = Generator(config, shape.channels, shape.resolution)
        self.discriminator = Discriminator(config, shape.channels, shape.resolution)
        init_weights(self.generator, config.init_std)
        init_weights(self.discriminator, config.init_std)
        betas = (config.beta1, config.beta2)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=config.lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=config.lr, betas=betas)

    def to(self, device: torch.device) -> DCGAN:
        # Called before the first step, while the optimizers hold no state yet.
        self.generator.to(device)
        self.discriminator.to(device)
        return self

    def sample_latent(
        self, n: int, *, generator: torch.Generator | None = None, device: Any = None
    ) -> torch.Tensor:
        return sample_latent(self.config, n, generator=generator, device=device)

    def train_step(self, real: torch.Tensor) -> Mapping[str, torch.Tensor]:
        G, D = self.generator, self.discriminator
        z = self.sample_latent(real.shape[0], device=real.device)
        fake = G(z)

        # D: maximise log D(x) + log(1 - D(G(z))). Real and fake go through D as separate
        # batches, as the paper's code does, so batchnorm sees each on its own.
        self.opt_d.zero_grad(set_to_none=True)
        logit_real = D(real)
        logit_fake = D(fake.detach())
        loss_d = F.binary_cross_entropy_with_logits(
            logit_real, torch.ones_like(logit_real)
        ) + F.binary_cross_entropy_with_logits(logit_fake, torch.zeros_like(logit_fake))
        loss_d.backward()
        self.opt_d.step()

        # G: non-saturating, maximise log D(G(z)); or minimax, minimise log(1 - D(G(z))).
        self.opt_g.zero_grad(set_to_none=True)
        logit_gen = D(fake)
        if self.config.loss == "non_saturating":
            loss_g = F.binary_cross_entropy_with_logits(logit_gen, torch.ones_like(logit_gen))
        else:
            loss_g = -F.binary_cross_entropy_with_logits(logit_gen, torch.zeros_like(logit_gen))
        loss_g.backward()
        self.opt_g.step()

        return {
            "loss_d": loss_d.detach(),
            "loss_g": loss_g.detach(),
            "d_real": torch.sigmoid(logit_real.detach()).mean(),
            "d_fake": torch.sigmoid(logit_fake.detach()).mean(),
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
