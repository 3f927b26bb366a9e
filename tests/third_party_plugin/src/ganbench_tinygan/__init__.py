"""TinyGAN: a small convolutional GAN, as a third-party ganbench plugin would write one.

It uses ganbench's public interfaces alone (``ganbench.plugins.interfaces``,
``ganbench.plugins.hookspecs``, ``ganbench.plugins.registry``) and is found through the
``ganbench`` entry-point group of its own distribution (``ganbench-tinygan``). Like the
interfaces, this module imports no torch, so ``ganbench plugins`` stays fast; the networks
are built on demand.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ganbench.plugins.hookspecs import hookimpl
from ganbench.plugins.interfaces import Architecture, GanModel, ImageShape
from ganbench.plugins.registry import Registrar

from .config import RESOLUTIONS, TinyGANConfig

__all__ = ["TinyGANArchitecture", "TinyGANConfig", "ganbench_register_architectures"]


class TinyGANArchitecture(Architecture):
    name = "tinygan"
    summary = "Tiny convolutional GAN (nearest upsampling in G, strided convs in D); a demo plugin"
    config_class = TinyGANConfig
    #: The tiny networks learn faster from more, smaller steps than from batches of 128.
    train_defaults: Mapping[str, Any] = {"batch_size": 32}

    def preset(self, dataset: str) -> Mapping[str, Any]:
        # Only what differs from the defaults, as a preset file would hold it.
        if dataset == "digits":
            return {"steps": 300, "eval_every": 100, "eval_samples": 2000, "eval_metrics": "fid,is"}
        return {}

    def supported_resolutions(self) -> tuple[int, ...]:
        return RESOLUTIONS

    def build(self, config: Any, shape: ImageShape) -> GanModel:
        from .model import TinyGAN

        return TinyGAN(config, shape)


@hookimpl
def ganbench_register_architectures(registry: Registrar[Architecture]) -> None:
    registry.add(TinyGANArchitecture())
