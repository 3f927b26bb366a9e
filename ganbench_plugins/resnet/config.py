"""Hyperparameters of the ResNet backbone family: every default is the SNGAN CIFAR-10
ResNet setting of Miyato et al.'s released code (pfnet-research/sngan_projection,
configs/sn_cifar10_unconditional.yml), the setting of the paper's CIFAR-10 ResNet
experiments (arXiv 1802.05957, the ResNet of Appendix B, Table 4).

No torch here: listing plugins and validating a plan stay fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ganbench.errors import ConfigError
from ganbench.hparams import check_choices, check_ranges, ranged
from ganbench.plugins.interfaces import ImageShape

#: The resolutions each backbone is built for (see ganbench_plugins/resnet/networks.py):
#: "resnet": SNGAN's Table 4 (32 px), Table 5 (STL-10's 48 px) and sngan_projection's
#: gen_models/resnet_64.py, resnet.py (64, 128 px); "wgan_gp_resnet": Gulrajani et al.'s
#: gan_cifar_resnet.py (32 px only); "standard_cnn": SNGAN's Table 3 (32 and 48 px).
BACKBONE_RESOLUTIONS: dict[str, tuple[int, ...]] = {
    "resnet": (32, 48, 64, 128),
    "wgan_gp_resnet": (32,),
    "standard_cnn": (32, 48),
}
#: Every resolution some backbone is built for.
RESOLUTIONS: tuple[int, ...] = tuple(
    sorted({r for rs in BACKBONE_RESOLUTIONS.values() for r in rs})
)
#: Channel-width multipliers' range in words.
WIDTHS = "more than 0 and at most 8 (1 = the reference's channel widths)"


@dataclass
class ResNetConfig:
    """One network family member and its training setting. Defaults: SNGAN's CIFAR-10
    ResNet, hinge loss, spectral normalisation in D, Adam (2e-4, 0, 0.9), 5 D updates per G
    update (sngan_projection configs/sn_cifar10_unconditional.yml, lines 35-47)."""

    #: Which networks. "resnet": Miyato et al.'s ResNets (Appendix B, Table 4 at 32 px,
    #: Table 5 at 48 px; sngan_projection's resnet_64.py / snresnet_64.py and resnet.py /
    #: snresnet.py at 64 and 128 px). "wgan_gp_resnet": Gulrajani et al.'s CIFAR ResNet
    #: (improved_wgan_training gan_cifar_resnet.py: 128 channels in G and D, global mean
    #: pooling, a biased output layer; 32 px). "standard_cnn": Miyato et al.'s Table 3
    #: (transposed convolutions in G; 3x3 and 4x4 stride-2 convolutions with LeakyReLU 0.1
    #: in D; 32 and 48 px).
    backbone: Literal["resnet", "wgan_gp_resnet", "standard_cnn"] = "resnet"
    #: Multiplier of every channel width of G (1 = the reference's: SNGAN's 256 at 32 px,
    #: WGAN-GP's 128); a narrow G (0.25) trains in minutes on a CPU.
    g_width: float = ranged(1.0, gt=0, le=8, text=WIDTHS)
    #: The same for D (SNGAN's 128 at 32 px).
    d_width: float = ranged(1.0, gt=0, le=8, text=WIDTHS)
    #: Table 4: z in R^128 drawn from N(0, I) (resnet_32.py: dim_z=128, "normal").
    z_dim: int = ranged(128, ge=1)
    z_distribution: Literal["normal", "uniform"] = "normal"
    #: D's and G's objectives. "hinge": Eq. (17) of Miyato et al. (updater.py
    #: loss_hinge_dis/loss_hinge_gen, loss_type: hinge in the config); "non_saturating":
    #: Goodfellow et al.'s cross-entropy with G's non-saturating loss (updater.py's
    #: loss_dcgan_*); "least_squares": Mao et al.'s LSGAN; "wasserstein":
    #: E[D(G(z))] - E[D(x)] for D and -E[D(G(z))] for G (Gulrajani et al., Algorithm 1),
    #: which needs a constrained critic (gp_weight > 0 or spectral_norm).
    loss: Literal["hinge", "non_saturating", "least_squares", "wasserstein"] = "hinge"
    #: Spectral normalisation of every D convolution, linear layer and projection
    #: embedding (sngan_projection's SNConvolution2D, SNLinear, SNEmbedID); G never.
    spectral_norm: bool = True
    #: lambda of Gulrajani et al.'s gradient penalty on D's loss (Sec. 4: 10); 0 = none
    #: (SNGAN's setting).
    gp_weight: float = ranged(0.0, ge=0, text="0 (no penalty) or more")
    #: n_dis: D updates per G update, each on its own real batch (the config's n_dis: 5).
    n_critic: int = ranged(5, ge=1, text="a whole number of at least 1")
    #: G's update on this many times D's batch of generated images: SNGAN's
    #: n_gen_samples 128 for batchsize 64 (sn_cifar10_unconditional.yml line 45;
    #: updater.py lines 50-58, 79-81) and WGAN-GP's GEN_BS_MULTIPLE 2
    #: (gan_cifar_resnet.py lines 37, 290-299) are 2. 1: G's batch is D's.
    g_batch_factor: int = ranged(1, ge=1, le=16, text="a whole number from 1 to 16")
    #: Adam for both networks: alpha 0.0002, beta1 0.0, beta2 0.9 (the config's adam:).
    lr: float = ranged(0.0002, gt=0)
    beta1: float = ranged(0.0, ge=0, lt=1)
    beta2: float = ranged(0.9, ge=0, lt=1)
    #: How labels condition the networks, on a dataset with classes. "none":
    #: unconditional. "projection": G's residual blocks normalise with per-class gain and
    #: bias (categorical conditional batchnorm), D adds <embed(y), phi(x)> to its output
    #: (Miyato & Koyama 2018, Eq. 3; snresnet_32.py lines 30-33). "acgan": the same G, and
    #: D also outputs class logits from phi(x) (Odena et al. 2017), trained with a
    #: cross-entropy weighted by acgan_weight (D) and acgan_g_weight (G).
    conditional: Literal["none", "projection", "acgan"] = "none"
    #: Weight of the auxiliary classifier's cross-entropy on real images in D's loss
    #: (gan_cifar_resnet.py line 51, ACGAN_SCALE = 1).
    acgan_weight: float = ranged(1.0, ge=0)
    #: Weight of the classifier's cross-entropy on generated images in G's loss (Odena et
    #: al. maximise the same log-likelihood in both networks: 1; gan_cifar_resnet.py line
    #: 52 uses ACGAN_SCALE_G = 0.1).
    acgan_g_weight: float = ranged(1.0, ge=0)

    def __post_init__(self) -> None:
        # `--set` and TOML values are checked as they are converted (ganbench.hparams); this
        # also catches a config built in code, and what no single field's type rules out.
        check_choices(self)
        for name in ("z_dim", "n_critic", "g_batch_factor"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{name} must be a whole number; got {value!r}")
        check_ranges(self)
        if self.loss == "wasserstein" and not self.gp_weight and not self.spectral_norm:
            raise ConfigError(
                "loss=wasserstein needs a constrained critic: set gp_weight=10 (WGAN-GP) or"
                " spectral_norm=true"
            )

    @property
    def conditioned(self) -> bool:
        """Whether the networks take labels."""
        return self.conditional != "none"


def check_image_shape(config: ResNetConfig, shape: ImageShape) -> None:
    """Refuse, in one line naming the fix, a config that cannot be built for ``shape``:
    a resolution the backbone has no networks for, or conditioning without classes."""
    allowed = BACKBONE_RESOLUTIONS[config.backbone]
    if shape.resolution not in allowed:
        others = [b for b, rs in BACKBONE_RESOLUTIONS.items() if shape.resolution in rs]
        alternative = f", or backbone={others[0]}" if others else ""
        raise ConfigError(
            f"backbone={config.backbone} is built for {', '.join(map(str, allowed))} px, not"
            f" {shape.resolution}; use --resolution {allowed[0]}{alternative}"
        )
    if config.conditioned and shape.num_classes < 2:
        raise ConfigError(
            f"conditional={config.conditional} needs a dataset with class labels (this one"
            f" has {shape.num_classes}); use conditional=none"
        )
