"""The metrics of class-conditional generators, registered beside FID and IS: intra-FID
(Miyato & Koyama 2018) and class accuracy. The computations, and the checks that refuse
them where they mean nothing, are the core's (``ganbench.metrics.conditional``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from ganbench.plugins.interfaces import RealStats
from ganbench.plugins.interfaces.metrics import ConditionalMetric

if TYPE_CHECKING:
    import numpy as np


class IntraFid(ConditionalMetric):
    name = "intra_fid"
    summary = (
        "intra-FID (Miyato & Koyama 2018, Sec. 5.1): FID of each class's generated images"
        " against that class's real images, averaged over the classes"
    )
    higher_is_better = False
    fits_class_covariance = True

    def compute_conditional(
        self, fake: np.ndarray, labels: np.ndarray, real: RealStats | None, seed: int
    ) -> Mapping[str, float]:
        from ganbench.metrics.conditional import intra_frechet_distance

        assert real is not None
        return {"intra_fid": intra_frechet_distance(fake, labels, real)}


class ClassAccuracy(ConditionalMetric):
    name = "class_accuracy"
    summary = (
        "fraction of generated images that the dataset's own classifier (the extractor's"
        " logits) labels with the class they were generated for"
    )
    higher_is_better = True
    feature = "logits"
    needs_real = False
    reads_classifier = True

    def compute_conditional(
        self, fake: np.ndarray, labels: np.ndarray, real: RealStats | None, seed: int
    ) -> Mapping[str, float]:
        from ganbench.metrics.conditional import class_accuracy

        return {"class_accuracy": class_accuracy(fake, labels)}
