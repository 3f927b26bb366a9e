"""The WGAN-GP architecture plugin (Gulrajani et al. 2017, arXiv 1704.00028) on DCGAN's
backbone."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ganbench.plugins.hookspecs import hookimpl
from ganbench.plugins.interfaces import Architecture, GanModel, ImageShape
from ganbench.plugins.registry import Registrar
from ganbench_plugins.dcgan import DCGANArchitecture
from ganbench_plugins.wgan_gp.config import WGANGPConfig


class WGANGPArchitecture(DCGANArchitecture):
    name = "wgan-gp"
    summary = (
        "Wasserstein GAN with gradient penalty on the DCGAN backbone: Gulrajani, Ahmed,"
        " Arjovsky, Dumoulin, Courville, 'Improved Training of Wasserstein GANs',"
        " NeurIPS 2017, arXiv 1704.00028"
    )
    config_class = WGANGPConfig
    #: The authors' code trains with batches of 64 (BATCH_SIZE = 64 in its CIFAR-10 and
    #: 64x64 scripts).
    train_defaults: Mapping[str, Any] = {"batch_size": 64}
    presets_package: ClassVar[str] = __package__

    def build(self, config: Any, shape: ImageShape) -> GanModel:
        from ganbench_plugins.wgan_gp.model import WGANGP

        return WGANGP(config, shape)


@hookimpl
def ganbench_register_architectures(registry: Registrar[Architecture]) -> None:
    registry.add(WGANGPArchitecture())
