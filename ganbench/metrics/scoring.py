"""Scoring a generator: features of its samples, the metrics, and how each was computed.

Metric names say what they are: ``fid_50k`` is FID on 50,000 generated images through
Inception-v3, as the literature reports it; with another extractor its name leads
(``digits-cnn/fid_2k``), so a score is never plotted against another extractor's. Every
score's full provenance (extractor weights and their sha256, resizer, feature, sample
counts, reference, seed, generator) goes into one JSON artifact per scoring
(``scoring/step-N.json``), and one short tag per score says it in a line (``NAME.how``):
a run page stays readable with several scores.

``ganbench eval`` scores a finished run's checkpoint at that checkpoint's step, where the
training may have scored already: its values go under ``eval/`` (``eval/fid_50k``,
``eval/digits-cnn/fid_2k``, with tags ``eval/NAME.how``) and its provenance into a file
of its own (``scoring/eval-TIME-PID-step-N.json``). So the training's values keep one
value per (metric, step), and its ``scoring/step-N.json`` is never overwritten.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ganbench.errors import UsageError
from ganbench.files.sealed import write_atomic
from ganbench.metrics.conditional import conditional_scores
from ganbench.metrics.features import LABELS, Sampler, generated_features
from ganbench.metrics.reference import Reference
from ganbench.plugins.interfaces import FeatureExtractor, LoadedExtractor, Metric, RealStats
from ganbench.plugins.interfaces.metrics import ConditionalMetric

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


#: The artifact folder of the provenance files, and the short tag's suffix.
PROVENANCE_DIR = "scoring"
HOW = "how"


@dataclass
class Evaluation:
    """Scores by MLflow metric name, and how each was computed."""

    scores: dict[str, float] = field(default_factory=dict)
    #: Every fact of how each score was computed, by score name (the JSON artifact).
    provenance: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def tags(self) -> dict[str, str]:
        """One short tag per score (``NAME.how``); the details are in the artifact."""
        return {f"{name}.{HOW}": summary(how) for name, how in self.provenance.items()}

    def lines(self) -> list[str]:
        return [f"{name} = {value:.6g}" for name, value in self.scores.items()]

    def write_provenance(self, path: Path, **context: Any) -> Path:
        """The provenance JSON (with ``context``, e.g. the step), written atomically."""
        record = {**context, "scores": self.scores, "how": self.provenance}
        write_atomic(path, json.dumps(record, indent=2, sort_keys=True))
        return path

    def prefixed(self, prefix: str) -> Evaluation:
        """The same scores under ``prefix`` + name (``eval/``)."""
        return Evaluation(
            {prefix + k: v for k, v in self.scores.items()},
            {prefix + k: dict(v) for k, v in self.provenance.items()},
        )


#: Where ``ganbench eval``'s scores go: ``eval/NAME`` beside the training's ``NAME``.
EVAL_PREFIX = "eval/"


def provenance_name(step: int | None) -> str:
    """The training's provenance file of ``step`` (``step-000000300.json``)."""
    return f"step-{step:09d}.json" if step is not None else "eval.json"


def eval_provenance_name(step: int, stamp: str) -> str:
    """``ganbench eval``'s provenance file, named with its invocation's stamp (UTC time and
    pid): ``eval-20261204T153012Z-4711-step-000000300.json``; never the training's name,
    nor another evaluation's."""
    return f"eval-{stamp}-step-{step:09d}.json"


_PROVENANCE = re.compile(
    r"^(?:eval-(?P<who>\d{8}T\d{6}Z-\d+(?:-\d+)?)-)?step-(?P<step>\d{9})\.json$"
)


def parse_provenance_name(name: str) -> tuple[int, str | None] | None:
    """(step, None) for a training's provenance file, (step, stamp-pid) for an eval's;
    None for any other name."""
    match = _PROVENANCE.match(Path(name).name)
    if match is None:
        return None
    return int(match["step"]), match["who"]


def summary(how: dict[str, str]) -> str:
    """One line: extractor, sample counts, reference, seed."""
    text = f"{how.get('extractor')}, {how.get('fake_samples')} generated"
    if how.get("reference"):
        text += f" vs {how.get('real_samples')} real ({how['reference']})"
    return text + f", latent seed {how.get('seed')}; details in {PROVENANCE_DIR}/*.json"


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
    replicas: Any = None,
) -> Evaluation | None:
    """Score ``count`` samples drawn from ``sample`` with each metric (a
    :class:`ConditionalMetric` with the classes the sampler says the images were drawn
    for). With ``replicas`` the samples are shared among the ranks, and rank 0 alone gets
    the scores (others None)."""
    check_metrics(metrics, reference)  # the sample counts were checked by make_scorer
    fake = generated_features(
        loaded,
        sample,
        count,
        batch_size=batch_size,
        progress=progress,
        description=f"{extractor.name} features of {count} samples",
        replicas=replicas,
    )
    if fake is None:
        return None
    out = Evaluation()
    for metric in metrics:
        if isinstance(metric, ConditionalMetric):
            values = conditional_scores(metric, fake, real, seed)
        else:
            values = metric.compute(_as_array(fake[metric.feature]), real, seed)
        how = _provenance(metric, extractor, loaded, count, real, reference, seed)
        how["generator"] = generator_source
        if isinstance(metric, ConditionalMetric):  # labels there: the metric read them
            how["classes"] = str(np.unique(fake[LABELS]).size)
        for base, value in values.items():
            name = metric_name(base, count, extractor.name)
            out.scores[name] = float(value)
            out.provenance[name] = dict(how)
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
