"""How a probe's draws are summarised, and how two discriminators are compared on them.

The authors report ``mean +- 1.96 * np.std(accuracies)`` over the draws
(svhn_semisup_analysis.py, last line): a *spread* of single draws (population standard
deviation), not an interval for the mean, which is about sqrt(n) times narrower. Both are
given here under their own names. Two discriminators probed with the same seed see the same
draws, so their difference is judged draw by draw: the mean paired difference with a t
interval (scipy's ``ttest_rel``) and an exact sign test on the draws one of them wins.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import scipy.stats

LEVEL = 0.95


@dataclass(frozen=True)
class DrawSummary:
    """Test accuracies over draws: the mean, the authors' spread and the mean's interval."""

    mean: float
    #: 1.96 x the population standard deviation of the draws (the authors' "+-").
    spread: float
    #: 95% t interval of the mean (NaN with one draw).
    mean_low: float
    mean_high: float
    draws: int


def summarise(accuracies: np.ndarray) -> DrawSummary:
    a = np.asarray(accuracies, dtype=np.float64)
    mean = float(a.mean())
    spread = float(1.96 * a.std(ddof=0))
    if len(a) < 2:
        return DrawSummary(mean, spread, math.nan, math.nan, len(a))
    sem = float(a.std(ddof=1) / math.sqrt(len(a)))
    if sem == 0:
        return DrawSummary(mean, spread, mean, mean, len(a))
    low, high = scipy.stats.t.interval(LEVEL, len(a) - 1, loc=mean, scale=sem)
    return DrawSummary(mean, spread, float(low), float(high), len(a))


@dataclass(frozen=True)
class PairedComparison:
    """``a`` minus ``b`` over the same draws (accuracy, as a fraction)."""

    draws: int
    difference: float
    #: 95% t interval of the mean paired difference (NaN with fewer than two draws or
    #: differences that do not vary).
    low: float
    high: float
    t_pvalue: float
    wins: int
    losses: int
    ties: int
    #: Exact two-sided binomial test of wins against losses (ties dropped).
    sign_pvalue: float

    @property
    def shown(self) -> bool:
        """Whether the interval excludes zero (a difference shown at the 5% level)."""
        return not math.isnan(self.low) and (self.low > 0 or self.high < 0)

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}

    def describe(self, a: str, b: str) -> str:
        points = f"{100 * self.difference:+.2f} points"
        if self.draws < 2 or math.isnan(self.low):
            return (
                f"{a} - {b}: {points} over {self.draws} draw(s); no interval (too few draws"
                " or no variation): no verdict"
            )
        verdict = (
            f"{a if self.difference > 0 else b} better" if self.shown else "no difference shown"
        )
        return (
            f"{a} - {b}: {points} (95% t interval {100 * self.low:+.2f} to"
            f" {100 * self.high:+.2f}, p={self.t_pvalue:.3g}, paired over {self.draws}"
            f" draws; sign test {self.wins} wins, {self.losses} losses, {self.ties} ties,"
            f" p={self.sign_pvalue:.3g}): {verdict}"
        )


def compare_paired(a: np.ndarray, b: np.ndarray) -> PairedComparison:
    """``a`` against ``b``, accuracies of the same draws in the same order."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(
            f"paired accuracies must be two equal 1-d arrays, not {a.shape}, {b.shape}"
        )
    diff = a - b
    wins, losses = int((diff > 0).sum()), int((diff < 0).sum())
    ties = len(diff) - wins - losses
    sign_p = float(scipy.stats.binomtest(wins, wins + losses, 0.5).pvalue) if wins + losses else 1.0
    low = high = p = math.nan
    if len(diff) >= 2 and np.ptp(diff) > 0:
        test = scipy.stats.ttest_rel(a, b)
        interval = test.confidence_interval(LEVEL)
        low, high, p = float(interval.low), float(interval.high), float(test.pvalue)
    return PairedComparison(len(diff), float(diff.mean()), low, high, p, wins, losses, ties, sign_p)
