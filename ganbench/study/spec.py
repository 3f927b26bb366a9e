"""A resolved study as data: its points, each trial's settings, and its identity.

Apart from ``ganbench.study.definition`` (reading and checking a study file) so that what
runs a study and what reports on it need only the resolved values, not the file's schema.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ganbench.training.config import LENGTH_KEYS

#: What a trial's score is: its last FID (the budget's end) or the lowest along training.
#: One objective drives Optuna, the report's ranking and the budget curve.
OBJECTIVES = ("final", "best")
#: Runs per side below which a comparison gives no verdict (Welch's test with 3 seeds
#: has about 2 degrees of freedom; Mann-Whitney with 5 against 5 cannot reach p < 0.008).
MIN_SEEDS = 5


@dataclass(frozen=True)
class Point:
    """One trial of a grid: a variant of the settings, on a dataset, from a seed."""

    variant: str
    dataset: str
    seed: int

    def label(self) -> str:
        return f"{self.variant} / {self.dataset} / seed {self.seed}"

    def params(self) -> dict[str, Any]:
        return {"variant": self.variant, "dataset": self.dataset, "seed": self.seed}


@dataclass
class Study:
    """A resolved study: every value explicit, ready to be turned into runs."""

    name: str
    architecture: str
    datasets: list[str]
    seeds: list[int]
    settings: dict[str, Any]
    variants: dict[str, dict[str, Any]]
    baseline: str | None = None
    summary: str = ""
    #: Ranges for ``--trials N`` searches: name -> {low, high, log} or {choices}.
    search: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: What each variant tests, by variant name (shown in the report).
    claims: dict[str, str] = field(default_factory=dict)
    #: Variants that train another architecture than ``architecture``: name -> plugin.
    architectures: dict[str, str] = field(default_factory=dict)
    #: Each variant's own search ranges (added to, and overriding, ``search``). When any
    #: variant has one, ``--trials N`` samples N settings of every variant.
    variant_search: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    #: The sampler of a ``--trials`` search when the command line names none.
    sampler: str | None = None
    #: "final" (the default) or "best" FID: the one number a trial is ranked by.
    objective: str = "final"
    #: Seeds a comparison needs on each side before the report gives a verdict.
    min_seeds: int = MIN_SEEDS
    #: The report's correction for multiple comparisons (holm, bonferroni, none).
    correction: str = "holm"
    #: Settings per dataset (steps, eval_samples...): digits and LSUN need other budgets.
    #: A trial's settings: the study's, then its dataset's, then its variant's.
    dataset_settings: dict[str, dict[str, Any]] = field(default_factory=dict)

    def architecture_of(self, variant: str) -> str:
        """The architecture a variant trains (the study's for a search's ``trial-N``)."""
        return self.architectures.get(variant, self.architecture)

    @property
    def per_variant_search(self) -> bool:
        return bool(self.variant_search)

    def search_space(self, variant: str) -> dict[str, dict[str, Any]]:
        """The ranges a search samples for one variant: the study's, then its own."""
        return search_space(self.search, self.variant_search, variant)

    def points(self) -> list[Point]:
        """Every (variant, dataset, seed), variants in file order, seeds innermost."""
        return [
            Point(v, d, s)
            for v, d, s in itertools.product(self.variants, self.datasets, self.seeds)
        ]

    def trial_settings(self, variant: str, dataset: str | None = None) -> dict[str, Any]:
        """The ``--set`` values of one trial: the study's settings, then its dataset's
        (``dataset_settings``), then the variant's own."""
        return merge_settings(self.base_settings(dataset), self.variants[variant])

    def base_settings(self, dataset: str | None = None) -> dict[str, Any]:
        """A search trial's settings before sampling: the study's, then its dataset's."""
        per_dataset = self.dataset_settings.get(dataset, {}) if dataset else {}
        return merge_settings(self.settings, per_dataset)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "summary": self.summary,
            "architecture": self.architecture,
            "datasets": self.datasets,
            "seeds": self.seeds,
            "baseline": self.baseline,
            "settings": self.settings,
            "variants": self.variants,
            "search": self.search,
            "claims": self.claims,
            # Only when used, so that the studies written before them keep their identity.
            **({"architectures": self.architectures} if self.architectures else {}),
            **({"variant_search": self.variant_search} if self.variant_search else {}),
            **({"sampler": self.sampler} if self.sampler else {}),
            # Always: studies run before it ranked trials by their best FID.
            "objective": self.objective,
            **({"min_seeds": self.min_seeds} if self.min_seeds != MIN_SEEDS else {}),
            **({"correction": self.correction} if self.correction != "holm" else {}),
            **({"dataset_settings": self.dataset_settings} if self.dataset_settings else {}),
        }

    def identity(self) -> str:
        """What makes two runs of a study the same study (summary and claims are prose)."""
        data = {k: v for k, v in self.as_dict().items() if k not in {"summary", "claims"}}
        text = json.dumps(data, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def differences(self, other: Mapping[str, Any]) -> list[str]:
        """What differs from another resolution of the study (for a clear refusal)."""
        mine = self.as_dict()
        return [
            f"{key} {other.get(key)!r} -> {mine[key]!r}"
            for key in mine
            if key not in {"summary", "claims"} and other.get(key) != mine[key]
        ]


def merge_settings(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Later layers win; a layer that gives a length (steps, epochs or d_steps) replaces
    the earlier layers' length whatever its key (a dataset's ``steps`` over the study's
    ``d_steps``), as the run's own configuration layers do."""
    out: dict[str, Any] = {}
    for layer in layers:
        if any(k in layer for k in LENGTH_KEYS):
            for key in LENGTH_KEYS:
                out.pop(key, None)
        out.update(layer)
    return out


def search_space(
    search: Mapping[str, Any], variant_search: Mapping[str, Any], variant: str
) -> dict[str, dict[str, Any]]:
    """A variant's ranges from a study's ``search`` and ``variant_search`` tables (also
    as a report reads them back from the resolved study file): the study's, then its own."""
    return {**search, **variant_search.get(variant, {})}
