"""The DCGAN architecture plugin (Radford, Metz, Chintala 2015, arXiv 1511.06434)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ganbench.plugins.hookspecs import hookimpl
from ganbench.plugins.interfaces import Architecture, GanModel, ImageShape
from ganbench.plugins.registry import Registrar
from ganbench_plugins.dcgan.config import RESOLUTIONS, DCGANConfig


class DCGANArchitecture(Architecture):
    name = "dcgan"
    summary = "Deep convolutional GAN with the paper's architecture guidelines and settings"
    config_class = DCGANConfig
    #: Sec. 4: "mini-batch stochastic gradient descent (SGD) with a mini-batch size of 128".
    train_defaults: Mapping[str, Any] = {"batch_size": 128}
    presets_package: ClassVar[str | None] = __package__

    def real_batches_per_step(self, config: Any) -> int:
        """``n_critic``: D updates per G update, each on its own real batch."""
        return config.n_critic

    def supported_resolutions(self) -> tuple[int, ...]:
        return RESOLUTIONS

    def check(self, config: Any, shape: ImageShape) -> None:
        """The authors' ImageNet-32 networks exist for 32x32 colour images only."""
        if config.network == "imagenet32":
            from ganbench_plugins.dcgan.imagenet32 import check_image_shape

            check_image_shape(shape.channels, shape.resolution)

    def build(self, config: Any, shape: ImageShape) -> GanModel:
        from ganbench_plugins.dcgan.model import DCGAN

        return DCGAN(config, shape)


@hookimpl
def ganbench_register_architectures(registry: Registrar[Architecture]) -> None:
    registry.add(DCGANArchitecture())
