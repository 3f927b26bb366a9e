"""DCGAN hyperparameters; every default is the paper's (Radford et al., arXiv 1511.06434)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ganbench.errors import ConfigError
from ganbench.hparams import check_choices, check_ranges, ranged

#: Powers of two from 16 up: each stride-2 layer doubles (G) or halves (D) the size.
RESOLUTIONS = (16, 32, 64, 128, 256)
#: n_critic's range in words (the family's configs redeclare the field with it).
N_CRITIC = "a whole number of at least 1"
#: kernel's values in words.
KERNELS = "4 (PyTorch's reference DCGAN) or 5 (the authors' Theano code)"


@dataclass
class DCGANConfig:
    """One DCGAN variant. The paper's ablations are switches here, not code forks."""

    #: Sec. 3: "a 100 dimensional uniform distribution Z".
    z_dim: int = ranged(100, ge=1)
    #: The paper draws uniform noise in [-1, 1]; the PyTorch reference draws N(0, 1).
    z_distribution: Literal["uniform", "normal"] = "uniform"
    #: Generator width: channels of the last hidden layer (the 4x4 layer has ngf * 2^(n-1)).
    ngf: int = ranged(64, ge=1)
    #: Discriminator width: channels of the first layer, doubling per layer.
    ndf: int = ranged(64, ge=1)
    #: Sec. 4: Adam, lr 0.0002 ("0.001 too high"), beta1 0.5 ("0.9 ... instability").
    lr: float = ranged(0.0002, gt=0)
    beta1: float = ranged(0.5, ge=0, lt=1)
    beta2: float = ranged(0.999, ge=0, lt=1)
    #: Sec. 4: "initialized from a zero-centered Normal distribution with standard deviation 0.02".
    init_std: float = ranged(0.02, ge=0)
    #: Sec. 3: LeakyReLU "slope of the leak was set to 0.2".
    leaky_slope: float = ranged(0.2, ge=0, le=1)
    #: Goodfellow et al.'s non-saturating generator loss, as DCGAN trained; or the minimax one.
    loss: Literal["non_saturating", "minimax"] = "non_saturating"
    #: Ablations (Sec. 3): batchnorm off altogether, or on G's output / D's input layer.
    batchnorm: bool = True
    bn_g_output: bool = False
    bn_d_input: bool = False
    #: D's batchnorm alone (G keeps its own): Lucic et al.'s ``discriminator_batchnorm``
    #: ("Are GANs Created Equal?", arXiv 1711.10337). Applies where D's normalisation is
    #: batchnorm (DCGAN, LSGAN); ``batchnorm=false`` still switches both networks'.
    d_batchnorm: bool = True
    #: D updates per G update, each on its own fresh real batch (Lucic et al.'s
    #: ``disc_iters``); the paper trains one to one.
    n_critic: int = ranged(1, ge=1, text=N_CRITIC)
    #: Ablation of Sec. 3's "replace any pooling layers with strided convolutions
    #: (discriminator)": "strided" (the paper) halves with 4x4 stride-2 convs; "maxpool" /
    #: "avgpool" use a 3x3 stride-1 conv instead, its block (batchnorm, LeakyReLU) then a
    #: 2x2 stride-2 pooling: the same feature map sizes.
    downsample: Literal["strided", "maxpool", "avgpool"] = "strided"
    #: Ablation of "... and fractional-strided convolutions (generator)": "transposed" (the
    #: paper) doubles with 4x4 stride-2 transposed convs; "nearest" with a nearest-neighbour
    #: 2x upsampling then a 3x3 stride-1 conv (the output layer too; the projection of z to
    #: 4x4 stays).
    upsample: Literal["transposed", "nearest"] = "transposed"
    #: Ablation of "remove fully connected hidden layers": 0 (the paper) has none; N adds one
    #: hidden layer of N units between z and G's projection, and between D's last 4x4 map
    #: and its logit.
    fc_hidden: int = ranged(
        0, ge=0, text="0 (no fully connected hidden layer, the paper) or a number of units"
    )
    #: Which networks. "paper": the guidelines' networks above, at any resolution.
    #: "imagenet32": the 3x3, 7-layer networks of the authors' released ImageNet-32 model,
    #: whose D gives the paper's 28,672 probe features (Sec. 5.1, Table 1; Newmu/dcgan_code
    #: imagenet/load_pretrained.py, "imagenet_gan_pretrain_128f_relu_lrelu_7l_3x3_256z"):
    #: 32x32 colour images only; D's widths ndf, ndf, 2ndf, 2ndf, 4ndf, 4ndf, G's their
    #: mirror from 4ngf (see ganbench_plugins/dcgan/imagenet32.py). The authors' model is
    #: network=imagenet32 with z_dim=256, ngf=128, ndf=128 (smaller widths run on a CPU).
    network: Literal["paper", "imagenet32"] = "paper"
    #: Side of the paper network's stride-2 kernels: 4 (PyTorch's reference dcgan main.py)
    #: or 5 (the authors' Theano code: faces/train_uncond_dcgan.py lines 82-103,
    #: svhn/svhn_semisup_analysis.py line 56, stride 2 with padding 2, which halves 32 to 16
    #: only with a 5x5 kernel). Sizes stay the same; z's projection and D's logit stay 4x4.
    kernel: int = ranged(4, ge=4, le=5, text=KERNELS)

    def __post_init__(self) -> None:
        # `--set` and TOML values are checked as they are converted (ganbench.hparams); this
        # also catches a config built in code, and the values no type can rule out.
        check_choices(self)
        require_whole("n_critic", self.n_critic, 1)
        check_ranges(self)  # the ranged() fields: lr > 0, 0 <= beta < 1, widths >= 1, ...
        if isinstance(self.fc_hidden, bool) or not isinstance(self.fc_hidden, int):
            raise ConfigError(f"fc_hidden must be a whole number; got {self.fc_hidden!r}")
        if self.fc_hidden < 0:
            raise ConfigError(
                "fc_hidden must be 0 (no fully connected hidden layer, the paper) or a number"
                f" of units; got {self.fc_hidden}"
            )
        if isinstance(self.kernel, bool) or self.kernel not in (4, 5):
            raise ConfigError(f"kernel must be {KERNELS}; got {self.kernel!r}")
        if self.network == "imagenet32":
            self._check_imagenet32()
        elif self.kernel != 4:
            self._check_kernel()

    def _check_imagenet32(self) -> None:
        """The switches that have no place in the authors' ImageNet-32 networks."""
        fix = "leave it at its default, or use network=paper"
        if self.downsample != "strided":
            raise ConfigError(
                f"downsample={self.downsample} does not apply to network=imagenet32 (its D"
                f" has its own strided 3x3 convs); {fix}"
            )
        if self.upsample != "transposed":
            raise ConfigError(
                f"upsample={self.upsample} does not apply to network=imagenet32 (its G has"
                f" its own transposed 3x3 convs); {fix}"
            )
        if self.fc_hidden:
            raise ConfigError(
                f"fc_hidden={self.fc_hidden} does not apply to network=imagenet32 (its G"
                f" projects z with a dense layer already); {fix}"
            )
        if self.kernel != 4:
            raise ConfigError(
                f"kernel={self.kernel} does not apply to network=imagenet32 (3x3 kernels"
                f" throughout, as the authors'); {fix}"
            )

    def _check_kernel(self) -> None:
        """A 5x5 kernel replaces the strided 4x4 convs: only where those are the paper's."""
        if self.downsample != "strided" or self.upsample != "transposed":
            raise ConfigError(
                f"kernel={self.kernel} applies to the strided convs only; with"
                f" downsample={self.downsample}, upsample={self.upsample} leave kernel at 4,"
                " or use downsample=strided, upsample=transposed"
            )


def require_whole(name: str, value: object, minimum: int) -> None:
    """A config field that must be a whole number of at least ``minimum`` (for the
    family's configs: ``n_critic`` and the like)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be a whole number of at least {minimum}; got {value!r}")
