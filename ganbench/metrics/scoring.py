"""Scoring a generator: features of its samples, the metrics, and how each was computed.

Metric names say what they are: ``fid_50k`` is FID on 50,000 generated images through
Inception-v3, as the literature reports it; with another extractor its name leads
(``digits-cnn/fid_2k``), so a score is never plotted against another extractor's. Every
score's provenance goes to tags beside it (``fid_50k.extractor`` ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ganbench.errors import UsageError
from ganbench.interfaces import FeatureExtractor, LoadedExtractor, Metric, RealStats
from ganbench.metrics.features import Sampler, generated_features
from ganbench.metrics.reference import Reference

#: The extractor whose scores keep the literature's plain names.
INCEPTION = "inception-v3"


def count_label(n: int) -> str:
    """50000 -> "50k", 2500 -> "2.5k", 360 -> "360"."""
    if n >= 1000 and n % 100 == 0:
        return f"{n / 1000:g}k"
    return str(n)


def metric_name(base: str, count: int, extractor: str) -> str:
    """``fid`` -> ``fid_50k``; ``is_std`` -> ``is_50k_std``; other extractors lead."""
    stem, std = (base[:-4], "_std") if base.endswith("_std") else (base, "")
    name = f"{stem}_{count_label(count)}{std}"
    return name if extractor == INCEPTION else f"{extractor}/{name}"


@dataclass
class Evaluation:
    """Scores by MLflow metric name, and tags saying how each was computed."""

    scores: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def lines(self) -> list[str]:
        return [f"{name} = {value:.6g}" for name, value in self.scores.items()]


def check_metrics(metrics: Sequence[Metric], reference: Reference | None) -> None:
    needing = [m.name for m in metrics if m.needs_real]
    if needing and reference is None:
        raise UsageError(f"{', '.join(needing)} need real images; give a dataset")


def evaluate(
    metrics: Sequence[Metric],
    extractor: FeatureExtractor,
    loaded: LoadedExtractor,
    sample: Sampler,
    count: int,
    real: RealStats | None,
    reference: Reference | None,
    *,
    seed: int,
    generator_source: str,
    batch_size: int = 200,
    progress: bool = True,
) -> Evaluation:
    """Score ``count`` samples drawn from ``sample`` with each metric."""
    check_metrics(metrics, reference)  # the sample counts were checked by make_scorer
    fake = generated_features(
        loaded,
        sample,
        count,
        batch_size=batch_size,
        progress=progress,
        description=f"{extractor.name} features of {count} samples",
    )
    out = Evaluation()
    for metric in metrics:
        values = metric.compute(_as_array(fake[metric.feature]), real, seed)
        how = _provenance(metric, extractor, loaded, count, real, reference, seed)
        how["generator"] = generator_source
        for base, value in values.items():
            name = metric_name(base, count, extractor.name)
            out.scores[name] = float(value)
            out.tags.update({f"{name}.{k}": v for k, v in how.items()})
    return out


def _as_array(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)


def _provenance(
    metric: Metric,
    extractor: FeatureExtractor,
    loaded: LoadedExtractor,
    count: int,
    real: RealStats | None,
    reference: Reference | None,
    seed: int,
) -> dict[str, str]:
    how = {
        "metric": metric.summary,
        "extractor": extractor.name,
        "extractor_weights_sha256": loaded.weights_sha256,
        "extractor_weights": loaded.weights_source,
        "resizer": extractor.resizer,
        "feature": metric.feature,
        "fake_samples": str(count),
        "seed": str(seed),
    }
    if metric.needs_real and reference is not None and real is not None:
        how["reference"] = reference.describe()
        how["real_samples"] = str(real.count)
    return how
