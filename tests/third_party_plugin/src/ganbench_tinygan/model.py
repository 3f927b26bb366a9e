"""TinyGAN's networks, and the :class:`ganbench.plugins.interfaces.GanModel` that trains them."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ganbench.plugins.interfaces import GanModel, ImageShape, Speed

from .config import RESOLUTIONS, TinyGANConfig

BASE = 4


def _doublings(resolution: int) -> int:
    if resolution not in RESOLUTIONS:
        raise ValueError(f"TinyGAN is built for resolutions {RESOLUTIONS}, not {resolution}")
    return int(math.log2(resolution // BASE))


class Generator(nn.Module):
    """z -> linear to 4x4 maps -> (2x nearest upsampling, 3x3 conv, batchnorm, ReLU)... ->
    2x upsampling, 3x3 conv to the image's channels, tanh (ganbench's [-1, 1] range)."""

    def __init__(self, config: TinyGANConfig, channels: int, resolution: int) -> None:
        super().__init__()
        n = _doublings(resolution)
        width = config.width * 2 ** (n - 1)
        layers: list[nn.Module] = [
            nn.Linear(config.z_dim, width * BASE * BASE, bias=False),
            nn.Unflatten(1, (width, BASE, BASE)),
            nn.BatchNorm2d(width),
            nn.ReLU(),
        ]
        for _ in range(n - 1):
            layers += [
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(width, width // 2, 3, 1, 1, bias=False),
                nn.BatchNorm2d(width // 2),
                nn.ReLU(),
            ]
            width //= 2
        layers += [
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(width, channels, 3, 1, 1),
            nn.Tanh(),
        ]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class Discriminator(nn.Module):
    """Image -> (4x4 stride-2 conv, LeakyReLU)... down to 4x4 -> linear to one logit."""

    def __init__(self, config: TinyGANConfig, channels: int, resolution: int) -> None:
        super().__init__()
        n = _doublings(resolution)
        blocks, c_in, width = [], channels, config.width
        for _ in range(n):
            blocks.append(
                nn.Sequential(nn.Conv2d(c_in, width, 4, 2, 1), nn.LeakyReLU(config.leaky_slope))
            )
            c_in, width = width, width * 2
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c_in * BASE * BASE, 1))

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every conv block's output, input side first (what ``ganbench probe`` reads)."""
        out = []
        for block in self.blocks:
            x = block(x)
            out.append(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)[-1]).flatten()


class TinyGAN(GanModel):
    """Generator, discriminator, their Adam optimizers and the non-saturating GAN step."""

    def __init__(self, config: TinyGANConfig, shape: ImageShape) -> None:
        self.config = config
        self.z_dim = config.z_dim
        self.latent_distribution = config.z_distribution
        self.generator = Generator(config, shape.channels, shape.resolution)
        self.discriminator = Discriminator(config, shape.channels, shape.resolution)
        self.opt_g, self.opt_d = self._optimizers({})
        self._G: Any = self.generator
        self._D: Any = self.discriminator
        self._device_type = "cpu"
        self._autocast: torch.dtype | None = None
        self._scaler = torch.amp.GradScaler("cpu", enabled=False)

    def _optimizers(self, kind: Mapping[str, bool]) -> tuple[torch.optim.Adam, torch.optim.Adam]:
        betas, lr = (self.config.beta1, self.config.beta2), self.config.lr
        return (
            torch.optim.Adam(self.generator.parameters(), lr=lr, betas=betas, **kind),
            torch.optim.Adam(self.discriminator.parameters(), lr=lr, betas=betas, **kind),
        )

    def to(self, device: torch.device) -> TinyGAN:
        # Called before the first step, while the optimizers hold no state yet.
        self.generator.to(device)
        self.discriminator.to(device)
        return self

    def accelerate(self, speed: Speed) -> None:
        # After to(), before any step: rebuilding the optimizers loses no state.
        if speed.channels_last:
            self.generator.to(memory_format=torch.channels_last)
            self.discriminator.to(memory_format=torch.channels_last)
        kind = {"fused": {"fused": True}, "foreach": {"foreach": True}, "plain": {"foreach": False}}
        self.opt_g, self.opt_d = self._optimizers(kind[speed.adam])
        self._device_type = speed.device.type
        self._autocast = speed.autocast
        self._scaler = torch.amp.GradScaler(
            speed.device.type, enabled=speed.autocast == torch.float16
        )
        if speed.compile:
            self._G, self._D = torch.compile(self.generator), torch.compile(self.discriminator)

    def sample_latent(
        self, n: int, *, generator: torch.Generator | None = None, device: Any = None
    ) -> torch.Tensor:
        if self.latent_distribution == "uniform":
            return torch.rand(n, self.z_dim, generator=generator, device=device) * 2 - 1
        return torch.randn(n, self.z_dim, generator=generator, device=device)

    def _amp(self) -> torch.autocast:
        return torch.autocast(
            self._device_type, self._autocast or torch.float32, enabled=self._autocast is not None
        )

    def train_step(self, real: torch.Tensor) -> Mapping[str, torch.Tensor]:
        G, D, scaler = self._G, self._D, self._scaler
        z = self.batch_latent(real.shape[0], real.device)

        self.opt_d.zero_grad(set_to_none=True)
        with self._amp():
            fake = G(z)
            logit_real = D(real)
            logit_fake = D(fake.detach())
            loss_d = F.binary_cross_entropy_with_logits(
                logit_real, torch.ones_like(logit_real)
            ) + F.binary_cross_entropy_with_logits(logit_fake, torch.zeros_like(logit_fake))
        scaler.scale(loss_d).backward()
        scaler.step(self.opt_d)

        self.opt_g.zero_grad(set_to_none=True)
        with self._amp():
            logit_gen = D(fake)
            loss_g = F.binary_cross_entropy_with_logits(logit_gen, torch.ones_like(logit_gen))
        scaler.scale(loss_g).backward()
        scaler.step(self.opt_g)
        scaler.update()

        return {
            "loss_d": loss_d.detach(),
            "loss_g": loss_g.detach(),
            "d_real": torch.sigmoid(logit_real.detach()).mean(),
            "d_fake": torch.sigmoid(logit_fake.detach()).mean(),
        }

    def generator_layers(self) -> list[torch.nn.Module]:
        return [m for m in self.generator.net if isinstance(m, nn.ReLU)]

    def discriminator_layers(self) -> list[torch.nn.Module]:
        return list(self.discriminator.blocks)

    def state_dict(self) -> dict[str, Any]:
        return {
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "scaler": self._scaler.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        if state.get("scaler") and self._scaler.is_enabled():
            self._scaler.load_state_dict(state["scaler"])
