"""The best FID a search can expect for a budget of k hyperparameter settings.

Lucic et al. ("Are GANs Created Equal?", arXiv 1711.10337, Sec. 5 and Figs. 4-5) compare
GANs not by one tuned run but by the distribution of the *minimum* FID reached with a
budget of k randomly sampled hyperparameter settings: a model that needs a lucky draw
looks good at k = 100 and bad at k = 5. This module computes that curve from the N
settings a ``--trials N`` search actually trained.

Why the exact k-subset formula and not a bootstrap: the question is "had we trained only
k of these N settings, which best FID would we have seen?". Averaging the minimum over
all C(N, k) subsets answers it exactly and is the unbiased (U-statistic) estimate of the
expected minimum of k independent draws from the sampled distribution; no resampling
noise, and for k = N it is the observed best. With the values sorted, x_(1) <= ... <=
x_(N), the minimum of a uniformly random k-subset is x_(i) with probability
C(N - i, k - 1) / C(N, k) (the subset holds x_(i) and k - 1 of the N - i larger ones), so
the mean and the quantiles (the band) follow in O(N) per k. A diverged setting is an FID
of +inf: a budget whose k draws may all have diverged has an infinite expectation, which
is what it is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class BudgetPoint:
    """The minimum FID over k settings: its expectation and a band of its quantiles."""

    k: int
    expected: float
    low: float
    high: float


def min_distribution(values: Sequence[float], k: int) -> tuple[list[float], list[float]]:
    """(sorted values, probability that each is the minimum of a random k-subset)."""
    x = sorted(float(v) for v in values)
    n = len(x)
    if not 1 <= k <= n:
        raise ValueError(f"k must be in 1..{n}, got {k}")
    total = math.comb(n, k)
    # 0-based rank i: the subset holds x[i] and k - 1 of the n - 1 - i values above it.
    probs = [math.comb(n - 1 - i, k - 1) / total for i in range(n)]
    return x, probs


def expected_min(values: Sequence[float], k: int) -> float:
    """The mean of min(S) over all k-subsets S of ``values``."""
    x, p = min_distribution(values, k)
    # 0 * inf is nan in floats: an infinite value that is never the minimum adds nothing.
    return math.fsum(pi * xi for xi, pi in zip(x, p, strict=True) if pi > 0)


def min_quantile(values: Sequence[float], k: int, q: float) -> float:
    """The q-quantile of min(S) over the k-subsets (the smallest value whose cumulative
    probability reaches q: NumPy's ``inverted_cdf``)."""
    x, p = min_distribution(values, k)
    cumulative = 0.0
    for xi, pi in zip(x, p, strict=True):
        cumulative += pi
        if cumulative >= q - 1e-12:
            return xi
    return x[-1]


def budget_curve(
    values: Sequence[float], band: tuple[float, float] = (0.05, 0.95)
) -> list[BudgetPoint]:
    """One point per budget k = 1..N of the N observed settings."""
    return [
        BudgetPoint(
            k,
            expected_min(values, k),
            min_quantile(values, k, band[0]),
            min_quantile(values, k, band[1]),
        )
        for k in range(1, len(values) + 1)
    ]
