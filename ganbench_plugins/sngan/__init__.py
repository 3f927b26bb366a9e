"""The SNGAN architecture plugin (Miyato et al. 2018, arXiv 1802.05957) on DCGAN's
backbone."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ganbench.plugins.hookspecs import hookimpl
from ganbench.plugins.interfaces import Architecture, GanModel, ImageShape
from ganbench.plugins.registry import Registrar
from ganbench_plugins.dcgan import DCGANArchitecture
from ganbench_plugins.sngan.config import SNGANConfig


class SNGANArchitecture(DCGANArchitecture):
    name = "sngan"
    summary = (
        "Spectrally normalised discriminator with the hinge loss on the DCGAN backbone:"
        " Miyato, Kataoka, Koyama, Yoshida, 'Spectral Normalization for Generative"
        " Adversarial Networks', ICLR 2018, arXiv 1802.05957"
    )
    config_class = SNGANConfig
    #: The paper trains with mini-batches of 64.
    train_defaults: Mapping[str, Any] = {"batch_size": 64}
    presets_package: ClassVar[str] = __package__

    def build(self, config: Any, shape: ImageShape) -> GanModel:
        from ganbench_plugins.sngan.model import SNGAN

        return SNGAN(config, shape)


@hookimpl
def ganbench_register_architectures(registry: Registrar[Architecture]) -> None:
    registry.add(SNGANArchitecture())
