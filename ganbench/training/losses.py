"""The adversarial losses every GAN family may train with, as functions of D's raw outputs.

Each D loss takes D's outputs on real and on generated images, each G loss D's outputs
on G's images; all return the scalar each network minimises. Outputs are raw: DCGAN's
sigmoid lives inside its cross-entropy, the others use D's output as it is. Reductions
run in float32 whatever dtype autocast gave the outputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


# ---- Goodfellow et al. 2014, as DCGAN trains (Radford et al., arXiv 1511.06434) ----------
def bce_d(logit_real: torch.Tensor, logit_fake: torch.Tensor) -> torch.Tensor:
    """D maximises log D(x) + log(1 - D(G(z))): the cross-entropy with targets 1 and 0."""
    return F.binary_cross_entropy_with_logits(
        logit_real, torch.ones_like(logit_real)
    ) + F.binary_cross_entropy_with_logits(logit_fake, torch.zeros_like(logit_fake))


def non_saturating_g(logit_gen: torch.Tensor) -> torch.Tensor:
    """G maximises log D(G(z)) (Goodfellow et al.'s non-saturating alternative)."""
    return F.binary_cross_entropy_with_logits(logit_gen, torch.ones_like(logit_gen))


def minimax_g(logit_gen: torch.Tensor) -> torch.Tensor:
    """G minimises log(1 - D(G(z))) (the minimax game as written)."""
    return -F.binary_cross_entropy_with_logits(logit_gen, torch.zeros_like(logit_gen))


# ---- Mao et al. 2017, least squares GAN (arXiv 1611.04076) -------------------------------
def least_squares_d(
    out_real: torch.Tensor, out_fake: torch.Tensor, a: float, b: float
) -> torch.Tensor:
    """min_D 1/2 E[(D(x) - b)^2] + 1/2 E[(D(G(z)) - a)^2]: b codes real, a fake."""
    real, fake = out_real.float(), out_fake.float()
    return 0.5 * (real - b).square().mean() + 0.5 * (fake - a).square().mean()


def least_squares_g(out_gen: torch.Tensor, c: float) -> torch.Tensor:
    """min_G 1/2 E[(D(G(z)) - c)^2]: c is what G wants D to believe of its images."""
    return 0.5 * (out_gen.float() - c).square().mean()


# ---- Arjovsky et al. 2017 / Gulrajani et al. 2017 (arXiv 1704.00028), Wasserstein ------
def wasserstein_d(out_real: torch.Tensor, out_fake: torch.Tensor) -> torch.Tensor:
    """The critic minimises E[D(G(z))] - E[D(x)] (Algorithm 1, line 7, before the
    gradient penalty): minus the estimate of the Wasserstein-1 distance."""
    return out_fake.float().mean() - out_real.float().mean()


def wasserstein_g(out_gen: torch.Tensor) -> torch.Tensor:
    """G minimises -E[D(G(z))] (Algorithm 1, line 12)."""
    return -out_gen.float().mean()


# ---- Miyato et al. 2018 (arXiv 1802.05957), hinge loss, their Eq. (17) -------------------
def hinge_d(out_real: torch.Tensor, out_fake: torch.Tensor) -> torch.Tensor:
    """D minimises E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))]."""
    return F.relu(1 - out_real.float()).mean() + F.relu(1 + out_fake.float()).mean()


def hinge_g(out_gen: torch.Tensor) -> torch.Tensor:
    """G minimises -E[D(G(z))]."""
    return -out_gen.float().mean()


# ---- Odena et al. 2017 (arXiv 1610.09585), the auxiliary classifier's term --------------
def class_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The cross-entropy of D's class logits with the classes: ACGAN's L_C (its Eq. 3),
    which D minimises on real images and G on its own (gan_cifar_resnet.py lines 51-52)."""
    return F.cross_entropy(logits.float(), labels)
