"""The DCGAN authors' ImageNet-32 networks (``DCGANConfig.network = "imagenet32"``).

Sec. 5.1 of the paper probes "the discriminator's convolutional features from all layers"
of a DCGAN trained on Imagenet-1k at 32x32, 28,672 of them (Table 1); that network is not
the guidelines' 4x4 one but the authors' released model "imagenet_gan_pretrain_128f_relu_
lrelu_7l_3x3_256z", defined in Newmu/dcgan_code imagenet/load_pretrained.py: nz 256,
ngf = ndf = 128 (lines 29-33), 3x3 kernels, 7 layers each.

D (lines 55-64): conv3x3 stride 1 + LeakyReLU (no batchnorm); five conv3x3 with strides
2, 1, 2, 1, 2 (padding 1), each batchnorm + LeakyReLU(0.2); the 512x4x4 map flattened and
dotted with ``wy`` (8192 x 1) to the logit: here a 4x4 conv to one output, the same map.

D's widths: the code does not state them (they live in the weight file). They follow from
the paper's 28,672 features: every layer is max-pooled to 4x4, so 16 x sum(widths) =
28,672 and sum(widths) = 1,792 = 128 + 128 + 256 + 256 + 512 + 512, i.e. ndf doubling at
the stride-2 layers after the first (ndf, ndf, 2ndf, 2ndf, 4ndf, 4ndf). The released
weights' .npy headers agree (models/imagenet_gan_pretrain_.../30_discrim_params.jl_01,
_02, _05, _08, _17: (128, 3, 3, 3), (128, 128, 3, 3), (256, 128, 3, 3), (256, 256, 3, 3),
(8192, 1); batchnorm gains 128, 256, 256, 512, 512).

G (lines 44-53): dense z -> 8192 units with batchnorm over those units
(``batchnorm(T.dot(Z, w))``: BatchNorm1d here) + ReLU, reshaped to (4ngf)x4x4; six
transposed 3x3 convs with strides 2, 1, 2, 1, 2, 1 (border 1), batchnorm + ReLU except the
last, to 3 channels with Tanh. Theano's deconv with subsample 2 makes exactly twice the
input size (lib/ops.py line 93), so stride 2 is ConvTranspose2d(3, 2, 1, output_padding=1)
and stride 1 ConvTranspose2d(3, 1, 1). G's widths are not in the code either: they are
taken as D's mirror (4ngf@4 -> 4ngf@8 -> 2ngf@8 -> 2ngf@16 -> ngf@16 -> ngf@32 -> 3@32),
an assumption the weight headers bear out (30_gen_params.jl_02, _05, _08, _11, _14, _17:
batchnorm widths 8192, 512, 256, 256, 128, 128; _10, _13, _16, _19: (256, 256, 3, 3),
(256, 128, 3, 3), (128, 128, 3, 3), (128, 3, 3, 3)).

Biases: the authors' layers have none (a batchnorm's shift stands in). Here the three
layers they leave unnormalised (D's input conv, D's logit, G's output) stay bias-free; a
layer whose normalisation a switch removes (``batchnorm``, ``d_batchnorm``, D's norm
"none") gets a bias, as in the paper network. Theano's "conv" mode flips the kernel
(lib/ops.py line 85): the same family of maps, so nothing changes when training from
scratch.
"""

from __future__ import annotations

from torch import nn

from ganbench.errors import ConfigError
from ganbench_plugins.dcgan.config import DCGANConfig

#: The authors' images: 32x32, colour (load_pretrained.py lines 30-31).
RESOLUTION = 32
CHANNELS = 3
#: Strides of D's six conv layers and of G's six transposed convs (load_pretrained.py).
D_STRIDES = (1, 2, 1, 2, 1, 2)
G_STRIDES = (2, 1, 2, 1, 2, 1)
#: Side of the map z is projected to, and of D's last map.
BASE = 4


def check_image_shape(channels: int, resolution: int) -> None:
    """Refuse images the authors' networks were not built for."""
    if (channels, resolution) != (CHANNELS, RESOLUTION):
        raise ConfigError(
            f"network=imagenet32 is built for {RESOLUTION}x{RESOLUTION} colour images;"
            f" got {channels} channel(s) at resolution {resolution}: use --resolution"
            f" {RESOLUTION} on a colour dataset, or network=paper"
        )


def discriminator_widths(ndf: int) -> tuple[int, ...]:
    """D's six conv widths: ndf, doubling at each stride-2 layer after the first."""
    return (ndf, ndf, 2 * ndf, 2 * ndf, 4 * ndf, 4 * ndf)


def generator_widths(ngf: int, channels: int) -> tuple[int, ...]:
    """G's widths: the dense projection's maps, then each transposed conv's output."""
    return (4 * ngf, 4 * ngf, 2 * ngf, 2 * ngf, ngf, ngf, channels)


def conv(c_in: int, c_out: int, stride: int, bias: bool) -> nn.Conv2d:
    """``dnn_conv(h, w, subsample=(s, s), border_mode=(1, 1))`` with a 3x3 ``w``."""
    return nn.Conv2d(c_in, c_out, 3, stride, 1, bias=bias)


def deconv(c_in: int, c_out: int, stride: int, bias: bool) -> nn.ConvTranspose2d:
    """lib/ops.py's ``deconv`` with a 3x3 kernel and border 1: ``stride`` times the size."""
    return nn.ConvTranspose2d(c_in, c_out, 3, stride, 1, output_padding=stride - 1, bias=bias)


def generator_layers(config: DCGANConfig, channels: int) -> list[nn.Module]:
    """G after z: Flatten (z comes as N x z_dim x 1 x 1), the dense projection with its
    batchnorm over all 16 x 4ngf units, the reshape to maps, then the transposed convs.
    Every hidden layer ends in a ReLU whose output is a map (the model's G layers)."""
    bn = config.batchnorm
    widths = generator_widths(config.ngf, channels)
    units = widths[0] * BASE * BASE
    layers: list[nn.Module] = [
        nn.Flatten(),
        nn.Linear(config.z_dim, units, bias=not bn),
        *([nn.BatchNorm1d(units)] if bn else []),
        nn.Unflatten(1, (widths[0], BASE, BASE)),
        nn.ReLU(inplace=True),
    ]
    hidden = list(zip(widths[:-2], widths[1:-1], G_STRIDES[:-1], strict=True))
    for c_in, c_out, stride in hidden:
        layers += [
            deconv(c_in, c_out, stride, bias=not bn),
            *([nn.BatchNorm2d(c_out)] if bn else []),
            nn.ReLU(inplace=True),
        ]
    out_bn = bn and config.bn_g_output
    layers += [
        deconv(widths[-2], widths[-1], G_STRIDES[-1], bias=False),
        *([nn.BatchNorm2d(widths[-1])] if out_bn else []),
        nn.Tanh(),
    ]
    return layers
