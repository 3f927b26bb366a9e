"""The interfaces of sample-quality metric plugins: a :class:`FeatureExtractor` loads into
a :class:`LoadedExtractor`; a :class:`Metric` scores its features against :class:`RealStats`.

No numpy or torch at module level (only under ``TYPE_CHECKING``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import numpy as np
    import torch


class FeatureExtractor(ABC):
    """Turns images into features that sample-quality metrics compare.

    A score is only comparable with scores from the same extractor and weights, so every
    score records :attr:`name`, the weights' sha256 and :attr:`resizer`.
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    #: How images are brought to the network's input size (recorded with every score).
    resizer: ClassVar[str]
    #: Environment variable that may name a local weights file (offline machines).
    weights_env: ClassVar[str | None] = None
    #: The dimension of each output by feature name, as the network (with its default
    #: weights) gives them, e.g. ``{"pool": 2048, "logits": 1008}``: known without loading
    #: any weights, so FID's sample count (it needs more samples than dimensions for a
    #: covariance that is not singular) is checked before weights are loaded or
    #: downloaded. Undeclared (empty), the check waits for the real features' dimension,
    #: after the weights are loaded and the reference statistics computed.
    feature_dims: ClassVar[Mapping[str, int]] = {}
    #: The dataset whose classes the ``logits`` output scores, logit i for label i (the
    #: bundled digits-cnn classifies ``"digits"``); None when they are no dataset's classes
    #: (Inception-v3's are ImageNet's). Class accuracy is scored only where it names the
    #: run's dataset.
    classifies: ClassVar[str | None] = None

    @abstractmethod
    def load(self, weights: str | None, device: torch.device) -> LoadedExtractor:
        """The network on ``device``, from ``weights`` (a file) or the extractor's default.

        Raises :class:`ganbench.errors.GanbenchError` naming the fix when the weights
        cannot be had (offline machine, corrupt file).
        """


@dataclass
class LoadedExtractor:
    """A feature extractor ready to run.

    ``module(images)`` takes uint8 N x C x H x W images on the module's device, any channel
    count (1 or 3) and any resolution, and returns ``{"pool": N x D, "logits": N x K}``
    float32 tensors: ``pool`` for FID/KID/precision-recall, ``logits`` for IS.
    """

    module: torch.nn.Module
    #: sha256 of the weights file the module was loaded from.
    weights_sha256: str
    #: Where the weights came from (a path, or "bundled with ganbench_plugins.digits").
    weights_source: str


@dataclass
class RealStats:
    """What the metrics need of the real images' features, cached once per reference.

    ``mu``/``sigma`` (float64) serve FID; ``features`` (float32 N x D, the ``pool``
    output) serve KID and precision/recall, which compare samples, not moments;
    ``labels`` (int64, one per feature row) serve the per-class metrics (intra-FID).
    """

    mu: np.ndarray
    sigma: np.ndarray
    features: np.ndarray
    #: sigma's symmetric square root, kept so FID needs one eigendecomposition, not two.
    sigma_sqrt: np.ndarray | None = None
    #: The real images' classes (int64; -1 for an image without one); None for an
    #: unlabelled dataset.
    labels: np.ndarray | None = None
    #: Per-class statistics by class, computed on first use and kept for the scorer's
    #: life (``ganbench.metrics.conditional``); never written to the cache.
    by_class: dict[int, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def count(self) -> int:
        return len(self.features)


class Metric(ABC):
    """A sample-quality metric (FID, IS, ...) on extracted features.

    The core extracts the features (generated and real, the real ones cached) and names
    the results: a metric returns base names (``fid``; ``is`` and ``is_std``) and the core
    makes them ``fid_50k``, with the extractor's name in front when it is not Inception.
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    higher_is_better: ClassVar[bool]
    #: Which output of the feature extractor it reads: ``pool`` or ``logits``.
    feature: ClassVar[str] = "pool"
    #: False for metrics of the generated images alone (IS).
    needs_real: ClassVar[bool] = True
    #: True for metrics that fit a covariance to the features (FID's Gaussians): the core
    #: refuses to score them from no more samples (generated, or real when their number
    #: is limited) than the feature's dimension, where the covariance is singular.
    fits_covariance: ClassVar[bool] = False

    @abstractmethod
    def compute(self, fake: np.ndarray, real: RealStats | None, seed: int) -> Mapping[str, float]:
        """Scores by base name, from generated features ``fake`` (float32 N x D)."""


class ConditionalMetric(Metric):
    """A metric of a class-conditional generator: it reads each generated image's
    features together with the class the generator was asked for.

    The core refuses it for an unconditional model or an unlabelled dataset, and calls
    :meth:`compute_conditional` instead of :meth:`Metric.compute`.
    """

    #: Fits a covariance to each class's features (intra-FID): the core refuses it when a
    #: class has no more samples, generated or real, than the feature's dimension.
    fits_class_covariance: ClassVar[bool] = False
    #: Reads the extractor's ``logits`` as the dataset's classes (class accuracy): only
    #: with an extractor whose :attr:`FeatureExtractor.classifies` names the dataset.
    reads_classifier: ClassVar[bool] = False

    def compute(self, fake: np.ndarray, real: RealStats | None, seed: int) -> Mapping[str, float]:
        raise TypeError(f"{self.name} needs the generated images' labels: compute_conditional")

    @abstractmethod
    def compute_conditional(
        self, fake: np.ndarray, labels: np.ndarray, real: RealStats | None, seed: int
    ) -> Mapping[str, float]:
        """Scores by base name, from generated features ``fake`` (float32 N x D) and the
        classes ``labels`` (int64 N) they were generated for."""
