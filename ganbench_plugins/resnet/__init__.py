"""The ResNet backbone family: Miyato et al.'s SNGAN ResNets (arXiv 1802.05957, and the
64/128 px ones of pfnet-research/sngan_projection), Gulrajani et al.'s WGAN-GP CIFAR ResNet
(arXiv 1704.00028) and SNGAN's standard CNN, unconditional or class-conditional (projection
discriminator, Miyato & Koyama 2018; auxiliary classifier, Odena et al. 2017).

The networks are :mod:`ganbench_plugins.resnet.networks` (built by
:func:`~ganbench_plugins.resnet.networks.build_networks`), the hyperparameters
:class:`~ganbench_plugins.resnet.config.ResNetConfig`. The model class and the plugin's
registration come with the core's shared adversarial step (``ganbench.training``).
"""
