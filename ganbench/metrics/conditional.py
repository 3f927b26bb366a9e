"""Scores of a class-conditional generator (intra-FID, class accuracy) and their checks.

Intra-FID is Miyato & Koyama's (2018, "cGANs with Projection Discriminator", Sec. 5.1):
the FID of each class's generated images against that class's real images, averaged over
the classes. Their code, pfnet-research/sngan_projection at e84b1a5, is followed:
``evaluations/calc_ref_stats.py`` lines 59-67 fit each class's mean and (``np.cov``,
unbiased: ``evaluation.py`` lines 175-177) covariance to its real images,
``evaluations/calc_intra_FID.py`` lines 49-60 generate 5,000 images of each class and
write each class's FID (``evaluation.py`` lines 213-217), averaged afterwards. Where
ganbench deviates, and why:

- The generated images are the scorer's one seeded stream, with classes drawn uniformly
  by ``GanModel.sample_labels`` after the latents, so FID, IS, intra-FID and class
  accuracy all score the same images; not 5,000 images per class with the label fixed.
  50,000 samples over CIFAR-10's 10 classes are about 5,000 a class, as theirs.
- The real images are the scorer's reference split (a run's ``eval_split``), not
  necessarily the training images they used.
- A class with no more images, generated or real, than the feature's dimension is
  refused, its covariance being singular (their ImageNet classes, about 1,300 real images
  of 2,048-d Inception features, were). Before sampling, the generated count must give
  every class more than the dimension with :data:`MARGIN_SD` standard deviations to
  spare, so a refusal after the images are drawn is practically impossible.

Class accuracy is the fraction of generated images that the dataset's own classifier
(an extractor whose ``classifies`` names the dataset) labels with the class asked for.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from ganbench.errors import UsageError
from ganbench.metrics.counts import EVAL_FIX
from ganbench.metrics.features import LABELS
from ganbench.metrics.frechet import frechet_distance, gaussian_stats, psd_sqrt
from ganbench.plugins.interfaces import Dataset, FeatureExtractor, Metric, RealStats
from ganbench.plugins.interfaces.metrics import ConditionalMetric

#: A planned sample count must give each class more images than the feature dimension
#: even this many binomial standard deviations below its expected share (the chance that
#: one class falls short is then about 3e-7).
MARGIN_SD = 5.0


def conditional_metrics(metrics: Sequence[Metric]) -> list[ConditionalMetric]:
    return [m for m in metrics if isinstance(m, ConditionalMetric)]


def _names(metrics: Sequence[Metric]) -> tuple[str, str]:
    """(``intra_fid``, ``needs``) / (``intra_fid, class_accuracy``, ``need``)."""
    return ", ".join(m.name for m in metrics), "needs" if len(metrics) == 1 else "need"


def samples_for_classes(dim: int, classes: int) -> int:
    """The fewest samples n whose uniform labels over ``classes`` give each class more
    than ``dim`` images with :data:`MARGIN_SD` to spare: n p - k sqrt(n p (1 - p)) >= dim + 1
    (p = 1 / classes), solved for sqrt(n)."""
    p = 1.0 / classes
    spread = MARGIN_SD * math.sqrt(p * (1 - p))
    root = (spread + math.sqrt(spread**2 + 4 * p * (dim + 1))) / (2 * p)
    n = math.ceil(root**2)
    while n * p - MARGIN_SD * math.sqrt(n * p * (1 - p)) < dim + 1:  # round-off
        n += 1
    return n


def check_conditional_plan(
    metrics: Sequence[Metric],
    extractor: FeatureExtractor,
    dataset: Dataset,
    samples: int,
    *,
    num_classes: int | None = None,
    extractors: Sequence[FeatureExtractor] = (),
    fix: str = EVAL_FIX,
) -> None:
    """Refuse, before any weights are loaded, conditional metrics that cannot be scored:
    an unlabelled dataset, a model of ``num_classes`` (None: not known yet, checked when
    it is scored) that is unconditional or has other classes than the dataset, class
    accuracy through an extractor that does not classify the dataset (``extractors``:
    the registered ones, to name one that does), and intra-FID from too few ``samples``
    for the extractor's declared dimension (``fix`` says how to give {n})."""
    chosen = conditional_metrics(metrics)
    if not chosen:
        return
    if not dataset.num_classes:
        names, need = _names(chosen)
        raise UsageError(
            f"{names} {need} a labelled dataset; {dataset.name} has no labels: leave"
            f" {names} out of the metrics"
        )
    if num_classes is not None:
        check_model_classes(chosen, num_classes, dataset.num_classes, dataset.name)
    for metric in chosen:
        if metric.reads_classifier and extractor.classifies != dataset.name:
            what = f"{extractor.classifies}'s" if extractor.classifies else "no dataset's"
            others = [e.name for e in extractors if e.classifies == dataset.name]
            how = (
                f"use --extractor {others[0]}"
                if others
                else f"no extractor classifies {dataset.name}: leave {metric.name} out"
            )
            raise UsageError(
                f"{metric.name} needs a classifier of {dataset.name}'s classes;"
                f" {extractor.name}'s logits are {what} classes: {how}"
            )
        dim = extractor.feature_dims.get(metric.feature)
        if metric.fits_class_covariance and dim is not None:
            check_generated_share(metric, extractor.name, dim, samples, dataset.num_classes, fix)


def check_model_classes(
    metrics: Sequence[Metric], num_classes: int, dataset_classes: int | None, dataset: str
) -> None:
    """Refuse conditional metrics of an unconditional model, or of one whose classes are
    not the dataset's."""
    chosen = conditional_metrics(metrics)
    if not chosen:
        return
    names, need = _names(chosen)
    if not num_classes:
        raise UsageError(
            f"{names} {need} a class-conditional generator; this model is unconditional:"
            f" leave {names} out of the metrics"
        )
    if num_classes != dataset_classes:
        raise UsageError(
            f"{names} {need} the model's classes to be {dataset}'s; it generates"
            f" {num_classes} classes and {dataset} has {dataset_classes or 0}: score it on the"
            " dataset it was trained on"
        )


def check_generated_share(
    metric: Metric, extractor: str, dim: int, samples: int, classes: int, fix: str
) -> None:
    """Refuse ``samples`` too few for every one of ``classes`` to get more than ``dim``."""
    need = samples_for_classes(dim, classes)
    if samples < need:
        raise UsageError(
            f"{metric.name.upper()} from {samples:,} samples over {classes} classes of"
            f" {extractor}'s {dim:,}-d {metric.feature} features: each class's covariance"
            f" is singular unless it has more than {dim:,} images; score at least"
            f" {need:,} samples ({fix.format(n=need)})"
        )


def check_real_classes(
    metrics: Sequence[Metric],
    extractor: str,
    dim: int,
    real: RealStats,
    classes: int,
    where: str,
    fix: str,
) -> None:
    """Refuse intra-FID when the real images (of ``where``, e.g. "digits test at 32px")
    lack labels or a class has no more of them than the feature's ``dim``."""
    for metric in conditional_metrics(metrics):
        if not metric.fits_class_covariance:
            continue
        labels = real.labels
        if labels is None or (labels < 0).any():
            raise UsageError(
                f"{metric.name} needs the real images' classes; {where} has images without"
                " labels: leave it out of the metrics"
            )
        counts = np.bincount(labels, minlength=classes)
        short = int(np.argmin(counts))
        if counts[short] <= dim:
            raise UsageError(
                f"{metric.name.upper()} needs more than {dim:,} real images of each class"
                f" for {extractor}'s {dim:,}-d {metric.feature} features; class {short} of"
                f" {where} has {counts[short]:,} ({fix})"
            )


def conditional_scores(
    metric: ConditionalMetric, fake: Mapping[str, np.ndarray], real: RealStats | None, seed: int
) -> Mapping[str, float]:
    """``metric`` of the generated features ``fake`` (with their ``labels``)."""
    labels = fake.get(LABELS)
    if labels is None:
        raise UsageError(
            f"{metric.name} needs the classes the images were generated for; these samples"
            f" carry none (an unconditional generator): leave {metric.name} out of the metrics"
        )
    labels = np.asarray(labels, dtype=np.int64)
    features = np.ascontiguousarray(fake[metric.feature], dtype=np.float32)
    if metric.fits_class_covariance:
        if real is None or real.labels is None:
            raise UsageError(f"{metric.name} needs the real images' classes; give a labelled split")
        classes = _classes(labels, real.labels)
        dim = features.shape[1]
        for side, side_labels in (("generated", labels), ("real", real.labels)):
            counts = np.array([(side_labels == c).sum() for c in classes])
            if counts.min() <= dim:
                short = int(classes[np.argmin(counts)])
                raise UsageError(
                    f"{metric.name.upper()}: class {short} has {counts.min():,} of the"
                    f" {len(side_labels):,} {side} images, no more than the {dim:,}-d"
                    f" features' dimension (a singular covariance); score more {side}"
                    " images of each class"
                )
    return metric.compute_conditional(features, labels, real, seed)


def _classes(fake_labels: np.ndarray, real_labels: np.ndarray) -> np.ndarray:
    """Every class either side has (real images without a label, -1, are none)."""
    return np.union1d(np.unique(fake_labels), np.unique(real_labels[real_labels >= 0]))


def class_gaussian(real: RealStats, label: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, covariance and the covariance's square root of class ``label``'s real
    features, computed once per scorer (kept in ``real.by_class``)."""
    if label not in real.by_class:
        assert real.labels is not None
        mu, sigma = gaussian_stats(np.asarray(real.features)[real.labels == label])
        real.by_class[label] = (mu, sigma, psd_sqrt(sigma))
    return real.by_class[label]


def intra_frechet_distance(fake: np.ndarray, labels: np.ndarray, real: RealStats) -> float:
    """The mean over classes of each class's FID, generated ``fake`` features (of classes
    ``labels``) against the real features of the same class; every class that either
    side has counts."""
    if real.labels is None:
        raise ValueError("intra-FID needs the real features' labels")
    classes = _classes(labels, real.labels)
    distances = []
    for label in classes.tolist():
        mu_real, sigma_real, root = class_gaussian(real, label)
        mu_fake, sigma_fake = gaussian_stats(fake[labels == label])
        distances.append(frechet_distance(mu_real, sigma_real, mu_fake, sigma_fake, root))
    return float(np.mean(distances))


def class_accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """The fraction of images whose highest logit is the class they were generated for."""
    return float(np.mean(np.argmax(logits, axis=1) == labels))
