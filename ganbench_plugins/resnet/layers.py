"""The layers class conditioning adds to a GAN: conditional batchnorm in G, the projection
and auxiliary-classifier heads of D, and spectral normalisation over a network.

Every forward here is traceable whole by torch.compile and capturable as a CUDA graph: no
host sync, and Python branches only on settings fixed at construction or on whether an
argument was given (never on a tensor's value).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


class ConditionalBatchNorm2d(nn.Module):
    """Batchnorm whose scale and shift are chosen per sample by its class label.

    ``num_classes`` > 0: batchnorm without an affine transform, then ``gamma[y] * x_hat +
    beta[y]`` with ``gamma`` and ``beta`` embeddings of the classes, initialised to 1 and 0
    (pfnet-research/sngan_projection source/links/categorical_conditional_batch_normalization.py
    lines 52-61, CategoricalConditionalBatchNormalization; improved_wgan_training
    tflib/ops/cond_batchnorm.py lines 11-12 likewise). Batch statistics in training, the
    running ones in eval mode, as :class:`torch.nn.BatchNorm2d`; eps is PyTorch's 1e-5
    (WGAN-GP's; Chainer's default in sngan_projection is 2e-5).

    ``num_classes`` 0: a plain :class:`torch.nn.BatchNorm2d` (affine), which ignores ``y``.
    """

    def __init__(self, num_features: int, num_classes: int = 0) -> None:
        super().__init__()
        if num_classes < 0:
            raise ValueError(f"num_classes must be 0 (unconditional) or more, not {num_classes}")
        self.num_features = num_features
        self.num_classes = num_classes
        self.bn = nn.BatchNorm2d(num_features, affine=num_classes == 0)
        self.gamma: nn.Embedding | None = None
        self.beta: nn.Embedding | None = None
        if num_classes:
            self.gamma = nn.Embedding(num_classes, num_features)
            self.beta = nn.Embedding(num_classes, num_features)
            self.reset_embeddings()

    @torch.no_grad()
    def reset_embeddings(self) -> None:
        """Every class's scale 1 and shift 0: at initialisation the layer is batchnorm."""
        if self.gamma is not None and self.beta is not None:
            nn.init.ones_(self.gamma.weight)
            nn.init.zeros_(self.beta.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        out = self.bn(x)
        if self.gamma is None or self.beta is None:
            return out
        if y is None:
            raise ValueError("a class-conditional batchnorm needs the labels y")
        shape = (y.shape[0], self.num_features, 1, 1)
        return self.gamma(y).view(shape) * out + self.beta(y).view(shape)


class DiscriminatorOutput(NamedTuple):
    """What a discriminator returns when asked for its class logits (ACGAN)."""

    #: The adversarial output, one value per image: (N,).
    adversarial: torch.Tensor
    #: The auxiliary classifier's logits: (N, num_classes).
    class_logits: torch.Tensor


class DiscriminatorHead(nn.Module):
    """D's last layer on its feature vector phi(x) (N, F), with its class conditioning.

    - "none": ``linear(phi)``.
    - "projection": ``linear(phi) + sum(embed(y) * phi, 1)`` (Miyato & Koyama 2018, "cGANs
      with Projection Discriminator", Eq. 3; sngan_projection dis_models/snresnet_32.py
      lines 30-33). Without ``y`` the unconditional part alone, as that code's
      ``if y is not None``; a model's step always passes the labels.
    - "acgan": ``linear(phi)``, and :meth:`classify` gives ``classifier(phi)``, logits of
      the ``num_classes`` classes (Odena et al. 2017, "Conditional Image Synthesis with
      Auxiliary Classifier GANs"; gan_cifar_resnet.py lines 173-177).

    ``bias``: whether the adversarial linear layer has a bias (snresnet_32.py line 17 has
    none; the 64/128 px ones and WGAN-GP's do).
    """

    def __init__(
        self, features: int, num_classes: int = 0, conditioning: str = "none", *, bias: bool
    ) -> None:
        super().__init__()
        if conditioning not in ("none", "projection", "acgan"):
            raise ValueError(
                f"conditioning must be none, projection or acgan, not {conditioning!r}"
            )
        if conditioning != "none" and num_classes < 1:
            raise ValueError(f"conditioning={conditioning} needs num_classes >= 1")
        self.conditioning = conditioning
        self.num_classes = num_classes if conditioning != "none" else 0
        self.linear = nn.Linear(features, 1, bias=bias)
        self.embed = nn.Embedding(num_classes, features) if conditioning == "projection" else None
        self.classifier = nn.Linear(features, num_classes) if conditioning == "acgan" else None

    def forward(self, phi: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The adversarial output, (N,)."""
        out = self.linear(phi).squeeze(1)
        if self.embed is not None and y is not None:
            out = out + (self.embed(y) * phi).sum(1)
        return out

    def classify(self, phi: torch.Tensor) -> torch.Tensor:
        """The auxiliary classifier's logits, (N, num_classes)."""
        if self.classifier is None:
            raise ValueError(
                f"class logits come from an ACGAN head; this one is {self.conditioning!r}"
            )
        return self.classifier(phi)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Glorot-uniform weights (gain 1) and zero biases: sngan_projection's
        GlorotUniform for l5/l_y (snresnet_32.py lines 17-19) and tflib's default Glorot
        initialisation of WGAN-GP's output and ACGAN layers (tflib/ops/linear.py)."""
        for layer in (self.linear, self.classifier):
            if layer is not None:
                nn.init.xavier_uniform_(layer.weight)
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)
        if self.embed is not None:
            nn.init.xavier_uniform_(self.embed.weight)


class BlockStack(nn.Module):
    """A discriminator trunk: its ``blocks`` (an ``nn.ModuleList``) run in order."""

    blocks: nn.ModuleList

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every block's output, in order."""
        out = []
        for block in self.blocks:
            x = block(x)
            out.append(x)
        return out

    def last_map(self, x: torch.Tensor) -> torch.Tensor:
        """The last block's output."""
        for block in self.blocks:
            x = block(x)
        return x


def discriminate(
    head: DiscriminatorHead, phi: torch.Tensor, y: torch.Tensor | None, class_logits: bool
) -> torch.Tensor | DiscriminatorOutput:
    """A discriminator's return: the adversarial output (N,), or with ``class_logits``
    (a Python flag, fixed per call site) a :class:`DiscriminatorOutput` with the logits."""
    out = head(phi, y)
    return DiscriminatorOutput(out, head.classify(phi)) if class_logits else out


def spectral_normalize(module: nn.Module) -> nn.Module:
    """Miyato et al.'s spectral normalisation on every convolution, linear layer and
    embedding of ``module`` (the projection's embedding too: sngan_projection's
    SNEmbedID, whose sigma is that of the whole class-by-feature matrix), except a
    :class:`ConditionalBatchNorm2d`'s scale and shift. Torch's parametrization, as
    ganbench_plugins/dcgan/networks.py's add_spectral_norm: one power iteration per
    training forward, u and v buffers in the state dict.

    Call it after initialising the weights: registering runs 15 power iterations on the
    weights as they are then (from random u, v drawn from torch's global generator).
    Returns ``module``."""
    skip = {
        id(e)
        for m in module.modules()
        if isinstance(m, ConditionalBatchNorm2d)
        for e in (m.gamma, m.beta)
        if e is not None
    }
    for m in list(module.modules()):
        layer = isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding))
        if layer and id(m) not in skip:
            spectral_norm(m)
    return module


@torch.no_grad()
def glorot_(layer: nn.Conv2d | nn.ConvTranspose2d | nn.Linear, gain: float = 1.0) -> None:
    """Glorot-uniform weights with ``gain`` and zero biases (Chainer's GlorotUniform and
    tflib's initialisers start biases at 0; PyTorch's default would not)."""
    nn.init.xavier_uniform_(layer.weight, gain)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
