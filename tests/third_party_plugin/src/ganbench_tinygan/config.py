"""TinyGAN's hyperparameters: a typed dataclass, every field settable with ``--set``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ganbench.errors import ConfigError

#: 4x4 doubled by each upsampling layer: 2 (16 px), 3 (32 px) or 4 (64 px) of them.
RESOLUTIONS = (16, 32, 64)


@dataclass
class TinyGANConfig:
    """One TinyGAN variant (the names must not clash with the runner's own settings)."""

    z_dim: int = 32
    #: The prior of z; the zoo writes it into exported files.
    z_distribution: Literal["uniform", "normal"] = "normal"
    #: Channels of G's last hidden layer and of D's first, doubling towards 4x4.
    width: int = 16
    lr: float = 0.001
    beta1: float = 0.5
    beta2: float = 0.999
    leaky_slope: float = 0.2

    def __post_init__(self) -> None:
        for key in ("z_dim", "width"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{key} must be a whole number of at least 1; got {value!r}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be more than 0; got {self.lr!r}")
