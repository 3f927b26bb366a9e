"""A study as data: a TOML file of base settings, variants (or axes), datasets and seeds.

The file is the whole definition; command-line overrides (``--dataset``, ``--seeds``,
``--steps``, ``--set``) are applied to it and the result is what the study is, recorded in
the Optuna study and the MLflow parent run. A later run of the same name must resolve to
the same definition, so that trials of two different studies are never mixed.

This module reads and checks the file (its schema, its axes and search ranges) and applies
the overrides; the resolved study it gives is a :class:`ganbench.study.spec.Study`.
"""

from __future__ import annotations

import itertools
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ganbench.errors import ConfigError, UsageError
from ganbench.files import packaged
from ganbench.files.names import check_folder_name
from ganbench.study.spec import MIN_SEEDS, OBJECTIVES, Study, merge_settings
from ganbench.training.config import LENGTH_KEYS

#: Keys of a study file's top level; anything else is a typo and refused.
_TOP_KEYS = {
    "name",
    "summary",
    "architecture",
    "datasets",
    "seeds",
    "baseline",
    "settings",
    "variants",
    "axes",
    "search",
    "claims",
    "sampler",
    "objective",
    "min_seeds",
    "correction",
    "dataset_settings",
}
#: Keys of a variant's table that are not ``--set`` values: the architecture it trains
#: (default: the study's) and its own ranges for ``--trials N`` searches.
_VARIANT_KEYS = {"architecture", "search"}
_SAMPLERS = ("tpe", "random")
_SEARCH_KEYS = {"low", "high", "log", "step", "choices"}


BUILTIN = "ganbench.study.builtin"


def builtin_names() -> list[str]:
    return packaged.toml_names(BUILTIN)


def builtin_text(name: str) -> str:
    return packaged.toml_text(BUILTIN, name)


def read_source(ref: str) -> tuple[str, str]:
    """(TOML text, where it came from) for a study file path or a built-in name."""
    path = Path(ref).expanduser()
    if path.suffix == ".toml" or path.exists():
        try:
            return path.read_text(), str(path.resolve())
        except FileNotFoundError:
            raise UsageError(f"study file {path} does not exist") from None
        except OSError as exc:
            raise UsageError(f"cannot read study file {path}: {exc.strerror}") from None
    if ref in builtin_names():
        return builtin_text(ref), f"built-in study {ref}"
    raise UsageError(
        f"no study file or built-in study named {ref!r}; built-in: {', '.join(builtin_names())}"
        " (ganbench study list)"
    )


def parse(text: str, where: str) -> Study:
    """A study from TOML text; every mistake is one line naming the key and the fix."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where} is not valid TOML: {exc}") from None
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))}; a study has"
            f" {', '.join(sorted(_TOP_KEYS))}"
        )
    for key in ("name", "architecture"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise ConfigError(f"{where}: '{key}' must be a non-empty string")
    datasets = raw.get("datasets", [])
    if isinstance(datasets, str):
        datasets = [datasets]
    if not datasets or not all(isinstance(d, str) for d in datasets):
        raise ConfigError(f"{where}: 'datasets' must list dataset names, e.g. [\"digits\"]")
    settings = _table(raw.get("settings", {}), "settings", where)
    if "seed" in settings:
        raise ConfigError(f"{where}: seeds are the study's 'seeds', not a setting")
    variants, architectures, variant_search = _split_variants(_variants(raw, where), where)
    sampler = raw.get("sampler")
    if sampler is not None and sampler not in _SAMPLERS:
        raise ConfigError(f"{where}: 'sampler' must be one of {', '.join(_SAMPLERS)}")
    baseline = raw.get("baseline")
    if baseline is not None and baseline not in variants:
        raise ConfigError(
            f"{where}: baseline {baseline!r} is not a variant ({', '.join(variants)})"
        )
    search = {
        k: _search_range(k, v, where)
        for k, v in _table(raw.get("search", {}), "search", where).items()
    }
    claims = {str(k): str(v) for k, v in _table(raw.get("claims", {}), "claims", where).items()}
    objective = raw.get("objective", "final")
    if objective not in OBJECTIVES:
        raise ConfigError(
            f"{where}: 'objective' must be one of {', '.join(OBJECTIVES)} (the final or the"
            f" best FID along training), not {objective!r}"
        )
    min_seeds = raw.get("min_seeds", MIN_SEEDS)
    if isinstance(min_seeds, bool) or not isinstance(min_seeds, int) or min_seeds < 2:
        raise ConfigError(f"{where}: 'min_seeds' must be a whole number of 2 or more")
    correction = raw.get("correction", "holm")
    if correction not in ("holm", "bonferroni", "none"):
        raise ConfigError(f"{where}: 'correction' must be holm, bonferroni or none")
    per_dataset = _table(raw.get("dataset_settings", {}), "dataset_settings", where)
    for name, table in per_dataset.items():
        per_dataset[name] = _table(table, f"dataset_settings.{name}", where)
        if "seed" in per_dataset[name]:
            raise ConfigError(f"{where}: seeds are the study's 'seeds', not a setting")
    return Study(
        name=raw["name"],
        architecture=raw["architecture"],
        datasets=list(datasets),
        seeds=seed_list(raw.get("seeds", 1), where),
        settings=settings,
        variants=variants,
        baseline=baseline if baseline is not None else next(iter(variants)),
        summary=str(raw.get("summary", "")),
        search=search,
        claims=claims,
        architectures=architectures,
        variant_search=variant_search,
        sampler=sampler,
        objective=objective,
        min_seeds=min_seeds,
        correction=correction,
        dataset_settings=per_dataset,
    )


def _split_variants(
    variants: dict[str, dict[str, Any]], where: str
) -> tuple[dict[str, dict[str, Any]], dict[str, str], dict[str, dict[str, dict[str, Any]]]]:
    """Each variant's ``--set`` values apart from its architecture and search ranges."""
    settings, architectures, searches = {}, {}, {}
    for name, values in variants.items():
        values = dict(values)
        if "architecture" in values:
            arch = values.pop("architecture")
            if not isinstance(arch, str) or not arch:
                raise ConfigError(
                    f"{where}: variant '{name}': 'architecture' must be a plugin name,"
                    f' e.g. "wgan-gp"'
                )
            architectures[name] = arch
        if "search" in values:
            table = _table(values.pop("search"), f"variants.{name}.search", where)
            searches[name] = {k: _search_range(f"{name}.{k}", v, where) for k, v in table.items()}
        settings[name] = values
    # One Optuna study holds every variant's trials: a choice list of one name must be the
    # same in all (Optuna refuses a categorical parameter whose choices change).
    seen: dict[str, list[Any]] = {}
    for name, table in searches.items():
        for key, spec in table.items():
            if "choices" in spec and seen.setdefault(key, spec["choices"]) != spec["choices"]:
                raise ConfigError(
                    f"{where}: variant '{name}': search '{key}' lists other choices than"
                    f" another variant's ({seen[key]}); a choice list must be the same in all"
                )
    return settings, architectures, searches


def seed_list(value: Any, where: str) -> list[int]:
    """``3`` -> [0, 1, 2]; a list is taken as it is."""
    if isinstance(value, bool):
        raise ConfigError(f"{where}: 'seeds' is a count or a list of integers")
    if isinstance(value, int):
        if value < 1:
            raise ConfigError(f"{where}: 'seeds' must be at least 1, got {value}")
        return list(range(value))
    if isinstance(value, list) and value and all(isinstance(s, int) for s in value):
        if any(isinstance(s, bool) or s < 0 for s in value):
            raise ConfigError(f"{where}: seeds are whole numbers of 0 or more, got {value}")
        if len(set(value)) != len(value):
            raise ConfigError(f"{where}: 'seeds' lists a seed twice: {value}")
        return list(value)
    raise ConfigError(f"{where}: 'seeds' is a count or a list of integers, got {value!r}")


def _table(value: Any, key: str, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: '{key}' must be a table")
    return dict(value)


def _variants(raw: Mapping[str, Any], where: str) -> dict[str, dict[str, Any]]:
    """Named variants, the product of axes, or (neither) one variant of the base settings."""
    named = _table(raw.get("variants", {}), "variants", where)
    axes = _table(raw.get("axes", {}), "axes", where)
    if named and axes:
        raise ConfigError(f"{where}: give 'variants' or 'axes', not both")
    if axes:
        for key, values in axes.items():
            if not isinstance(values, list) or not values:
                raise ConfigError(f"{where}: axis '{key}' must list its values")
        combos = itertools.product(*axes.values())
        return {
            ",".join(f"{k}={v}" for k, v in zip(axes, combo, strict=True)): dict(
                zip(axes, combo, strict=True)
            )
            for combo in combos
        }
    if not named:
        return {"base": {}}
    out = {}
    for name, values in named.items():
        if not isinstance(values, dict):
            raise ConfigError(f"{where}: variant '{name}' must be a table of settings")
        if "seed" in values:
            raise ConfigError(f"{where}: variant '{name}' sets 'seed'; seeds are the study's")
        unknown = sorted(k for k, v in values.items() if isinstance(v, dict) and k != "search")
        if unknown:
            raise ConfigError(
                f"{where}: variant '{name}': {', '.join(unknown)} is a table; a variant holds"
                f" settings, 'architecture' and a 'search' table of ranges"
            )
        out[str(name)] = dict(values)
    return out


def _search_range(key: str, value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict) or set(value) - _SEARCH_KEYS:
        raise ConfigError(
            f"{where}: search range '{key}' must be a table of low/high[/log/step] or choices"
        )
    if "choices" in value:
        if not isinstance(value["choices"], list) or not value["choices"]:
            raise ConfigError(f"{where}: search '{key}': 'choices' must be a non-empty list")
        return dict(value)
    if "low" not in value or "high" not in value or not value["low"] < value["high"]:
        raise ConfigError(f"{where}: search '{key}' needs low < high")
    return dict(value)


def apply_overrides(
    study: Study,
    *,
    datasets: Sequence[str] = (),
    seeds: int | None = None,
    steps: int | None = None,
    epochs: float | None = None,
    assignments: Mapping[str, str] | None = None,
    name: str | None = None,
) -> Study:
    """The command line's changes: they make another study, so the name records them."""
    if datasets:
        study.datasets = list(datasets)
    if seeds is not None:
        study.seeds = seed_list(seeds, "--seeds")
    changes: dict[str, Any] = {}
    if steps is not None:
        changes["steps"] = steps
    if epochs is not None:
        changes["epochs"] = epochs
    for key, value in (assignments or {}).items():
        if key == "seed":
            raise ConfigError("--set seed=...: a study's seeds are --seeds")
        changes[key] = value
    # The command line has the last word, over every dataset's own settings too.
    gone = set(changes) | (set(LENGTH_KEYS) if set(changes) & set(LENGTH_KEYS) else set())
    study.dataset_settings = {
        dataset: {k: v for k, v in table.items() if k not in gone}
        for dataset, table in study.dataset_settings.items()
    }
    study.settings = merge_settings(study.settings, changes)
    if name:
        study.name = name
    check_study_name(study.name, "--name" if name else "the study file's name")
    return study


def check_study_name(name: str, what: str = "study name") -> str:
    """``name`` when it can name the study's folder (``CACHE/studies/NAME``): one path
    component, so that ``/tmp/x`` or ``../x`` cannot put trials and reports elsewhere.
    Checked before anything is created (by ``apply_overrides``, and by the engine)."""
    return check_folder_name(name, what, "my-ablation-2", error=ConfigError)


def load(ref: str) -> tuple[Study, str]:
    """(study, its TOML text) from a file or a built-in name."""
    text, where = read_source(ref)
    return parse(text, where), text
