"""The ResNet family's model: its networks on the core's adversarial step, with the loss,
penalty and class conditioning its config names."""

from __future__ import annotations

from typing import Any

import torch

from ganbench.plugins.interfaces import ImageShape
from ganbench.training import losses
from ganbench.training.adversarial import AdversarialModel
from ganbench_plugins.resnet.config import ResNetConfig
from ganbench_plugins.resnet.networks import build_networks


class ResNetGAN(AdversarialModel):
    """SNGAN / WGAN-GP ResNets or SNGAN's standard CNN, unconditional or conditional
    (projection D, or ACGAN's auxiliary classifier). ``d_real``/``d_fake`` are D(x) as a
    probability with the cross-entropy loss, D's mean raw output with the others."""

    config: ResNetConfig

    def conditioned(self) -> bool:
        return self.config.conditioned

    def build_networks(
        self, config: ResNetConfig, shape: ImageShape
    ) -> tuple[torch.nn.Module, torch.nn.Module]:
        return build_networks(config, shape)

    def d_loss(self, out_real: torch.Tensor, out_fake: torch.Tensor) -> torch.Tensor:
        loss = self.config.loss
        if loss == "hinge":
            return losses.hinge_d(out_real, out_fake)
        if loss == "least_squares":  # Mao et al.'s 0-1 coding: a = 0, b = 1
            return losses.least_squares_d(out_real, out_fake, 0.0, 1.0)
        if loss == "wasserstein":
            return losses.wasserstein_d(out_real, out_fake)
        return losses.bce_d(out_real, out_fake)

    def g_loss(self, out_gen: torch.Tensor) -> torch.Tensor:
        loss = self.config.loss
        if loss == "hinge":
            return losses.hinge_g(out_gen)
        if loss == "least_squares":  # c = 1: G wants its images taken for real
            return losses.least_squares_g(out_gen, 1.0)
        if loss == "wasserstein":
            return losses.wasserstein_g(out_gen)
        return losses.non_saturating_g(out_gen)

    def d_output(self, out: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(out) if self.config.loss == "non_saturating" else out

    def d_penalty(
        self, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor | None = None
    ) -> torch.Tensor | None:
        if not self.config.gp_weight:
            return None
        return self.gradient_penalty(real, fake, labels, self.config.gp_weight)

    def discriminate(
        self, D: Any, images: torch.Tensor, labels: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.config.conditional == "acgan" and labels is not None:
            out = D(images, labels, class_logits=True)
            return out.adversarial, out.class_logits
        return super().discriminate(D, images, labels)

    def class_weights(self) -> tuple[float, float]:
        return self.config.acgan_weight, self.config.acgan_g_weight

    def generator_layers(self) -> list[torch.nn.Module]:
        # Each up-block's output (its residual sum for the ResNets, before the next
        # block's batchnorm and ReLU; after its ReLU for the standard CNN).
        return list(self.generator.blocks)

    def discriminator_layers(self) -> list[torch.nn.Module]:
        return list(self.discriminator.blocks)
