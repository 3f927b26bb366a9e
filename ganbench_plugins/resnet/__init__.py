"""The ResNet backbone family: Miyato et al.'s SNGAN ResNets (arXiv 1802.05957, and the
64/128 px ones of pfnet-research/sngan_projection), Gulrajani et al.'s WGAN-GP CIFAR ResNet
(arXiv 1704.00028) and SNGAN's standard CNN, unconditional or class-conditional (projection
discriminator, Miyato & Koyama 2018; auxiliary classifier, Odena et al. 2017).

The networks are :mod:`ganbench_plugins.resnet.networks` (built by
:func:`~ganbench_plugins.resnet.networks.build_networks`), the hyperparameters
:class:`~ganbench_plugins.resnet.config.ResNetConfig`, the model (the core's adversarial
step with the config's loss and conditioning) :mod:`ganbench_plugins.resnet.model`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ganbench.plugins.hookspecs import hookimpl
from ganbench.plugins.interfaces import Architecture, GanModel, ImageShape
from ganbench.plugins.registry import Registrar
from ganbench_plugins.resnet.config import RESOLUTIONS, ResNetConfig, check_image_shape


class ResNetArchitecture(Architecture):
    name = "resnet"
    summary = "SNGAN/WGAN-GP ResNets and SNGAN's standard CNN; unconditional, projection or ACGAN"
    config_class = ResNetConfig
    #: sngan_projection configs/sn_cifar10_unconditional.yml line 2: "batchsize: 64".
    train_defaults: Mapping[str, Any] = {"batch_size": 64}
    presets_package: ClassVar[str | None] = __package__

    def real_batches_per_step(self, config: Any) -> int:
        """``n_critic``: D updates per G update, each on its own real batch."""
        return config.n_critic

    def supported_resolutions(self) -> tuple[int, ...]:
        return RESOLUTIONS

    def check(self, config: Any, shape: ImageShape) -> None:
        check_image_shape(config, shape)

    def build(self, config: Any, shape: ImageShape) -> GanModel:
        from ganbench_plugins.resnet.model import ResNetGAN

        return ResNetGAN(config, shape)


@hookimpl
def ganbench_register_architectures(registry: Registrar[Architecture]) -> None:
    registry.add(ResNetArchitecture())
