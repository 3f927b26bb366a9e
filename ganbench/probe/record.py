"""A probe's results as what goes into the run: MLflow metrics, tags and a JSON record.

Names: ``PREFIX.accuracy`` is the mean test accuracy over the draws, ``.accuracy_spread``
the authors' "+-" (1.96 population standard deviations of single draws; it was logged as
``accuracy_ci95`` before, a name that read like an interval of the mean), and
``.accuracy_mean_low``/``_high`` the 95% t interval of the mean. ``PREFIX.paired.*`` compares
the trained discriminator with the random-init one on the same draws.
"""

from __future__ import annotations

import math
from typing import Any

from ganbench.probe.paired import PairedComparison
from ganbench.probe.probe import ProbeResult


def probe_metrics(prefix: str, result: ProbeResult, bn_layers: int) -> dict[str, float]:
    """A probe result as MLflow metrics under ``prefix`` (non-finite values left out)."""
    s = result.summary
    values = {
        f"{prefix}.accuracy": result.accuracy,
        f"{prefix}.error_rate": result.error_rate,
        f"{prefix}.accuracy_spread": s.spread,
        f"{prefix}.accuracy_mean_low": s.mean_low,
        f"{prefix}.accuracy_mean_high": s.mean_high,
        f"{prefix}.feature_dim": float(result.feature_dim),
        f"{prefix}.labels_used": float(result.labels_used),
        f"{prefix}.draws": float(result.draws),
        f"{prefix}.select_draws": float(result.select_draws),
        f"{prefix}.c": float(result.C),
        f"{prefix}.val_accuracy": result.val_accuracy,
        f"{prefix}.val_images": float(result.val_images),
        f"{prefix}.bn_layers_recalibrated": float(bn_layers),
        f"{prefix}.extract_seconds": result.extract_seconds,
        f"{prefix}.fit_seconds": result.fit_seconds,
    }
    return {k: float(v) for k, v in values.items() if math.isfinite(v)}


def paired_metrics(prefix: str, paired: PairedComparison) -> dict[str, float]:
    return {f"{prefix}.paired.{k}": v for k, v in paired.as_dict().items() if math.isfinite(v)}


def result_record(result: ProbeResult) -> dict[str, Any]:
    """Everything a reader needs to recompute the summary: per-draw accuracies, C scores."""
    return {
        "accuracy": result.accuracy,
        "accuracies": [d.accuracy for d in result.per_draw],
        "spread": result.summary.spread,
        "mean_interval": [result.summary.mean_low, result.summary.mean_high],
        "C": result.C,
        "c_scores": {f"{c:g}": v for c, v in result.c_scores.items()},
        "val_accuracy": result.val_accuracy,
        "feature_dim": result.feature_dim,
        "labels_used": result.labels_used,
        "select_draws": result.select_draws,
        "standardize": result.standardize,
    }


def describe(which: str, result: ProbeResult) -> str:
    """One line of the command's output for one discriminator."""
    s = result.summary
    spread = ""
    if result.draws > 1:
        spread = (
            f" (spread +- {100 * s.spread:.2f}: 1.96 sd of {result.draws} draws, as the"
            f" authors report; mean's 95% t interval {100 * s.mean_low:.2f}-"
            f"{100 * s.mean_high:.2f})"
        )
    return (
        f"{which:>11}: accuracy {100 * result.accuracy:.2f}%{spread}, error"
        f" {100 * result.error_rate:.2f}%; {result.feature_dim} features,"
        f" {result.labels_used} labels, C={result.C:g} (validation"
        f" {100 * result.val_accuracy:.2f}% over {result.select_draws} draw(s)), features"
        f" {result.extract_seconds:.1f}s, fit {result.fit_seconds:.1f}s"
    )
