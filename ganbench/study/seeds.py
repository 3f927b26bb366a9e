"""Seeds added to a study that already ran: when that is the same study, and whether its
stored trials allow it (Optuna cannot widen a categorical parameter's choices)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ganbench.study.spec import Study

if TYPE_CHECKING:
    import optuna


def added_seeds(study: Study, stored: dict[str, Any], mode: str) -> list[int] | None:
    """The stored study's seeds when this study is that one with seeds added, else None.

    More seeds are how a study reaches a verdict (MIN_SEEDS a side), and its finished
    trials stay valid: a grid point is (variant, dataset, seed) and the new seeds only add
    points. A search is not extended: its first seed seeds the sampler, and a seed taken
    away would leave finished trials the study no longer has."""
    before = stored.get("definition", {})
    if mode != "grid" or not before or "seeds" not in before:
        return None
    mine = study.as_dict()
    same_otherwise = all(before.get(k) == v for k, v in mine.items() if k not in _PROSE_AND_SEEDS)
    old = list(before["seeds"])
    if same_otherwise and set(old) < set(study.seeds):
        return old
    return None


#: Keys of a study's definition that do not make it another study when seeds are added.
_PROSE_AND_SEEDS = {"summary", "claims", "seeds"}


def seeds_are_choices(optuna_study: optuna.Study) -> bool:
    """Whether the study's trials hold the seed as a categorical choice (studies run
    before seeds could be added); since then a grid's seed is an integer parameter, as a
    search's is, so that a study given more seeds takes the same parameter."""
    from optuna.distributions import CategoricalDistribution

    return any(
        isinstance(t.distributions.get("seed"), CategoricalDistribution)
        for t in optuna_study.get_trials(deepcopy=False)
    )
