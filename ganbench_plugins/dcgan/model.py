"""A DCGAN: the paper's networks on the core's alternating adversarial step.

The step is ``ganbench.training.adversarial``'s, shared by every family: LSGAN, WGAN-GP
and SNGAN (their own plugins) subclass :class:`DCGAN` and change only its loss
(:meth:`DCGAN.d_loss`, :meth:`DCGAN.g_loss`), a penalty on D (:meth:`DCGAN.d_penalty`),
how D is normalised (:meth:`DCGAN.discriminator_norm`, :attr:`DCGAN.spectral_norm`); how
many D updates (each on its own real batch) go with one G update is the config's
``n_critic`` (``real_batches_per_step``), DCGAN's own included.
"""

from __future__ import annotations

import torch

from ganbench.plugins.interfaces import ImageShape
from ganbench.training import losses
from ganbench.training.adversarial import AdversarialModel, sample_latent, split_batches
from ganbench_plugins.dcgan.config import DCGANConfig
from ganbench_plugins.dcgan.networks import (
    Discriminator,
    DNorm,
    Generator,
    add_spectral_norm,
    init_weights,
)

__all__ = ["DCGAN", "sample_latent", "split_batches"]


class DCGAN(AdversarialModel):
    """Generator, discriminator and their Adam optimizers (unconditional)."""

    config: DCGANConfig

    def build_networks(
        self, config: DCGANConfig, shape: ImageShape
    ) -> tuple[torch.nn.Module, torch.nn.Module]:
        generator = Generator(config, shape.channels, shape.resolution)
        discriminator = Discriminator(
            config, shape.channels, shape.resolution, norm=self.discriminator_norm()
        )
        init_weights(generator, config.init_std)
        init_weights(discriminator, config.init_std)
        if self.spectral_norm:
            add_spectral_norm(discriminator)
        return generator, discriminator

    # ---- what the family's members change ------------------------------------------------
    def discriminator_norm(self) -> DNorm:
        """What normalises D's hidden layers: DCGAN's batchnorm."""
        return "batch"

    def d_loss(self, out_real: torch.Tensor, out_fake: torch.Tensor) -> torch.Tensor:
        """D maximises log D(x) + log(1 - D(G(z)))."""
        return losses.bce_d(out_real, out_fake)

    def g_loss(self, out_gen: torch.Tensor) -> torch.Tensor:
        """Non-saturating: maximise log D(G(z)); or minimax: minimise log(1 - D(G(z)))."""
        if self.config.loss == "non_saturating":
            return losses.non_saturating_g(out_gen)
        return losses.minimax_g(out_gen)

    def generator_layers(self) -> list[torch.nn.Module]:
        # Each hidden layer ends in its ReLU (after the conv and batchnorm): its output is
        # the layer's feature maps. The optional fc layer makes a vector, not maps.
        return [m for m in self.generator.net if isinstance(m, torch.nn.ReLU)]

    def discriminator_layers(self) -> list[torch.nn.Module]:
        return list(self.discriminator.blocks)
