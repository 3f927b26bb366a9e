"""The comparison a study reports: each variant against the baseline, over seeds.

Per comparison (one variant against the baseline on one dataset):

* The effect size is the difference of mean scores with Welch's 95% t interval: seeds of
  two variants are independent samples (a seed does not pair runs of different networks),
  their spreads differ (a variant can be far less stable than the baseline), and with
  3-10 seeds the t distribution, not the normal, gives the interval its honest width.
* A diverged run is a result, the worst one: it has no score to average, so where either
  side has one the test is the Mann-Whitney U test (exact for small samples) with the
  diverged runs ranked last, and the rank effect (the probability that a run of the
  variant scores better than one of the baseline, ties counted half) is reported beside
  the Welch interval of the runs that finished. Dropping diverged runs instead would
  favour exactly the unstable variants the test should catch.
* Every p-value of a report is one family: Holm's step-down correction controls the
  chance of any false verdict across all of them (Bonferroni, uniformly more powerful).
  The correction is written here (a dozen lines) rather than importing statsmodels for
  it; the tests check it against statsmodels' ``multipletests``.
* Below ``min_seeds`` runs on either side no verdict is given at all: with 3 seeds Welch's
  test has about 2 degrees of freedom, and Mann-Whitney cannot reach p < 0.05 / m.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats

#: The family-wise error rate of a report's verdicts.
ALPHA = 0.05
CORRECTIONS = ("holm", "bonferroni", "none")


@dataclass(frozen=True)
class Difference:
    """mean(variant) - mean(baseline) of the runs that finished, with Welch's interval."""

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
    if va + vb == 0.0:
        p = 0.0 if estimate != 0 else 1.0
        return Difference(estimate, estimate, estimate, p, math.inf, a.size, b.size)
    result = stats.ttest_ind(a, b, equal_var=False)
    low, high = result.confidence_interval(confidence)
    return Difference(
        estimate, float(low), float(high), float(result.pvalue), float(result.df), a.size, b.size
    )


@dataclass(frozen=True)
class Comparison:
    """One variant against the baseline: effect sizes, the test, and the verdict."""

    #: Runs on each side, diverged ones included.
    n_variant: int
    n_baseline: int
    #: Welch on the runs that finished (None when a side has none).
    difference: Difference | None
    #: P(a variant run scores better than a baseline run), diverged runs worst.
    superiority: float
    #: "welch" or "mann-whitney" (a side has diverged runs), or "" (too few seeds).
    test: str
    p_value: float
    #: After the report-wide correction (set by :func:`correct`).
    p_adjusted: float = math.nan
    #: Below the study's minimum seeds: no test, no verdict.
    too_few: bool = False
    min_seeds: int = 0

    @property
    def significant(self) -> bool:
        return not self.too_few and self.p_adjusted < ALPHA

    @property
    def better(self) -> bool:
        """The direction of the effect the test measured (lower scores are better)."""
        if self.test == "welch" and self.difference is not None:
            return self.difference.estimate < 0
        return self.superiority > 0.5

    def verdict(self, budget: str) -> str:
        """'worse: observed at BUDGET with n and m seeds', never 'reproduced'."""
        seeds = f"{self.n_variant} and {self.n_baseline} seeds"
        if self.too_few:
            return f"too few seeds for a verdict ({seeds}; the study asks {self.min_seeds})"
        if not self.significant:
            return f"no difference observed at {budget} with {seeds}"
        return f"{'better' if self.better else 'worse'}: observed at {budget} with {seeds}"


def compare(variant: Sequence[float], baseline: Sequence[float], *, min_seeds: int) -> Comparison:
    """``variant`` and ``baseline``: each run's score, +inf for a diverged run."""
    a = np.asarray(variant, dtype=np.float64)
    b = np.asarray(baseline, dtype=np.float64)
    difference = welch_difference(a[np.isfinite(a)].tolist(), b[np.isfinite(b)].tolist())
    superiority = probability_better(a, b) if a.size and b.size else math.nan
    if min(a.size, b.size) < max(min_seeds, 2):
        return Comparison(
            a.size, b.size, difference, superiority, "", math.nan, too_few=True,
            min_seeds=min_seeds,
        )  # fmt: skip
    if np.isfinite(a).all() and np.isfinite(b).all():
        assert difference is not None
        return Comparison(
            a.size, b.size, difference, superiority, "welch", difference.p_value,
            min_seeds=min_seeds,
        )  # fmt: skip
    # Mann-Whitney ranks +inf last, tied with each other: exactly "diverged is worst".
    p = float(stats.mannwhitneyu(a, b, alternative="two-sided").pvalue) if a.size else 1.0
    return Comparison(
        a.size, b.size, difference, superiority, "mann-whitney", p, min_seeds=min_seeds
    )


def probability_better(variant: np.ndarray, baseline: np.ndarray) -> float:
    """P(X < Y) + P(X = Y) / 2 over all pairs (lower is better): the common-language
    effect size of the Mann-Whitney U test, U / (n m)."""
    x = np.asarray(variant, dtype=np.float64)[:, None]
    y = np.asarray(baseline, dtype=np.float64)[None, :]
    return float(((x < y).sum() + 0.5 * (x == y).sum()) / (x.size * y.size))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (Holm 1979): the i-th smallest of m is
    multiplied by m - i (0-based), made non-decreasing, capped at 1."""
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()


def correct(comparisons: Sequence[Comparison], method: str = "holm") -> list[Comparison]:
    """The comparisons with ``p_adjusted`` set, the tested ones forming one family."""
    if method not in CORRECTIONS:
        raise ValueError(f"correction must be one of {', '.join(CORRECTIONS)}, not {method!r}")
    tested = [i for i, c in enumerate(comparisons) if not c.too_few]
    raw = [comparisons[i].p_value for i in tested]
    if method == "holm":
        adjusted = holm(raw)
    elif method == "bonferroni":
        adjusted = [min(1.0, p * len(raw)) for p in raw]
    else:
        adjusted = raw
    out = list(comparisons)
    for i, p in zip(tested, adjusted, strict=True):
        out[i] = replace(out[i], p_adjusted=p)
    return out


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
