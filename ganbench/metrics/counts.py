"""The sample counts a metric can be scored from, checked before any weights are loaded.

FID fits a Gaussian to the extractor's features: from n samples of D-d features the
covariance has rank at most n - 1, singular unless n > D, and a distance computed from
it means little. Inception-v3's pool features are 2,048-d; compare_gan and
PyTorch-StudioGAN score FID with 10,000 generated samples against the test split. This
module imports no torch, so a plan is checked before anything heavy is loaded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from ganbench.errors import UsageError
from ganbench.plugins.interfaces import Metric

#: The extractor of published FIDs.
INCEPTION = "inception-v3"
#: Generated samples compare_gan and PyTorch-StudioGAN score FID with (against the test
#: split); fewer bias Inception-v3 FID upward.
PUBLISHED_FID_SAMPLES = 10_000
#: How ``ganbench eval`` takes the generated sample count ({n}: the count to give).
EVAL_FIX = "--samples {n}"
#: How a run (and a study's settings) takes it.
TRAINING_FIX = "--eval-samples {n}, or --set eval_samples={n}"
#: How ``ganbench eval`` takes the real sample count.
REAL_FIX = "--real-samples {n}, or leave --real-samples out to use the whole split"


def covariance_metrics(metrics: Sequence[Metric]) -> list[Metric]:
    return [m for m in metrics if m.fits_covariance]


def check_covariance_counts(
    metrics: Sequence[Metric],
    extractor: str,
    dims: Mapping[str, int],
    samples: int,
    real_samples: int | None = None,
    *,
    fix: str = EVAL_FIX,
    real_fix: str = REAL_FIX,
) -> None:
    """Refuse a covariance metric (FID) of ``extractor``'s features scored from no more
    generated ``samples`` (or ``real_samples``, when given) than the feature's dimension
    in ``dims``; features ``dims`` does not list are not checked. ``fix`` and
    ``real_fix`` say how to give a count ({n}: the count to give)."""
    for metric in covariance_metrics(metrics):
        dim = dims.get(metric.feature)
        if dim is None:
            continue
        if samples <= dim:
            raise UsageError(_refusal(metric, extractor, dim, samples, "", "score", fix))
        if real_samples is not None and real_samples <= dim:
            raise UsageError(
                _refusal(metric, extractor, dim, real_samples, "real ", "use", real_fix)
            )


def _refusal(
    metric: Metric, extractor: str, dim: int, count: int, kind: str, verb: str, fix: str
) -> str:
    inception = extractor == INCEPTION
    n = max(dim + 1, PUBLISHED_FID_SAMPLES) if inception else dim + 1
    published = f", {n:,} or more as compare_gan and StudioGAN do" if inception else ""
    return (
        f"{metric.name.upper()} from {count:,} {kind}samples of {extractor}'s {dim:,}-d"
        f" {metric.feature} features has a singular covariance; {verb} at least"
        f" {dim + 1:,} {kind}samples{published} ({fix.format(n=n)})"
    )


def warn_few_samples(
    metrics: Sequence[Metric], extractor: str, samples: int, say: Callable[[str], None]
) -> None:
    """One line when Inception-v3 FID is scored from fewer than 10,000 generated samples."""
    if extractor != INCEPTION or samples >= PUBLISHED_FID_SAMPLES:
        return
    for metric in covariance_metrics(metrics):
        say(
            f"warning: {metric.name.upper()} from {samples:,} generated samples is biased"
            f" upward (the fewer, the more) and not comparable with published FIDs, scored"
            f" from {PUBLISHED_FID_SAMPLES:,} (compare_gan, StudioGAN) or 50,000"
        )
