"""The comparison a study reports: each variant's FID against the baseline's, over seeds.

Welch's two-sample t interval for the difference of means: seeds of two variants are
independent samples (a seed does not pair runs of different networks), their spreads
differ (a variant can be far less stable than the baseline), and with 3-10 seeds the t
distribution, not the normal, gives the interval its honest width. A difference whose
95% interval contains zero is reported as not distinguishable with that many seeds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Difference:
    """mean(variant) - mean(baseline), with its 95% interval and Welch's p-value."""

    estimate: float
    low: float
    high: float
    p_value: float
    df: float
    n_variant: int
    n_baseline: int

    @property
    def distinguishable(self) -> bool:
        return not (self.low <= 0.0 <= self.high)

    def verdict(self, lower_is_better: bool = True) -> str:
        if not math.isfinite(self.low) or not math.isfinite(self.high):
            return f"not distinguishable with n={self.n_variant} and {self.n_baseline} seeds"
        if not self.distinguishable:
            return f"not distinguishable with {self.n_variant} and {self.n_baseline} seeds"
        better = (self.estimate < 0) == lower_is_better
        return "better than the baseline" if better else "worse than the baseline"


def welch_difference(
    variant: Sequence[float], baseline: Sequence[float], confidence: float = 0.95
) -> Difference | None:
    """None when either side has no value; an infinite interval with a single seed."""
    a = np.asarray(variant, dtype=np.float64)
    b = np.asarray(baseline, dtype=np.float64)
    if a.size == 0 or b.size == 0:
        return None
    estimate = float(a.mean() - b.mean())
    if a.size < 2 or b.size < 2:
        return Difference(estimate, -math.inf, math.inf, math.nan, math.nan, a.size, b.size)
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    if se == 0.0:
        p = 0.0 if estimate != 0 else 1.0
        return Difference(estimate, estimate, estimate, p, math.inf, a.size, b.size)
    # Welch-Satterthwaite degrees of freedom.
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se
    p = float(2 * stats.t.sf(abs(estimate) / se, df))
    return Difference(estimate, estimate - half, estimate + half, p, df, a.size, b.size)


@dataclass(frozen=True)
class Spread:
    n: int
    mean: float
    std: float
    min: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread | None:
        x = np.asarray([v for v in values if math.isfinite(v)], dtype=np.float64)
        if x.size == 0:
            return None
        std = float(x.std(ddof=1)) if x.size > 1 else 0.0
        return cls(int(x.size), float(x.mean()), std, float(x.min()))
