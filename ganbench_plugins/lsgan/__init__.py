"""The LSGAN architecture plugin (Mao et al. 2017, arXiv 1611.04076) on DCGAN's backbone."""

from __future__ import annotations

from typing import Any, ClassVar

from ganbench.plugins.hookspecs import hookimpl
from ganbench.plugins.interfaces import Architecture, GanModel, ImageShape
from ganbench.plugins.registry import Registrar
from ganbench_plugins.dcgan import DCGANArchitecture
from ganbench_plugins.lsgan.config import LSGANConfig


class LSGANArchitecture(DCGANArchitecture):
    name = "lsgan"
    summary = (
        "Least squares GAN on the DCGAN backbone: Mao, Li, Xie, Lau, Wang, Smolley,"
        " 'Least Squares Generative Adversarial Networks', ICCV 2017, arXiv 1611.04076"
    )
    config_class = LSGANConfig
    presets_package: ClassVar[str] = __package__

    def build(self, config: Any, shape: ImageShape) -> GanModel:
        from ganbench_plugins.lsgan.model import LSGAN

        return LSGAN(config, shape)


@hookimpl
def ganbench_register_architectures(registry: Registrar[Architecture]) -> None:
    registry.add(LSGANArchitecture())
