"""A claim's recipe: a TOML file naming the paper's number, the training run that
reproduces (or stands in for) its setting, and the probes scored on it.

Every mistake is refused when the file is read, in one line naming the file and the key:
an unknown key (a typo would otherwise be a silently ignored setting), a value of the
wrong type, a missing one. Built-in recipes live in ``ganbench/claims/builtin/``.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganbench.errors import ConfigError, UsageError
from ganbench.files import packaged
from ganbench.files.names import LOWER_NAME, check_folder_name

SETTINGS = ("paper", "stand-in")
METRICS = ("accuracy", "error_rate")
TIME_BASES = ("measured", "estimated")
#: [train] keys that are flags of `ganbench run` (the others go in as --set KEY=VALUE).
FLAGS = ("split", "resolution", "steps", "epochs", "batch_size")

# Each table's keys: (type, required). "number" is an int or a float, "whole" an int;
# booleans are neither (TOML's true is not 1).
_TOP = {
    "name": ("str", True),
    "title": ("str", True),
    "setting": ("str", True),
    "stands_in_for": ("str", False),
    "claim": ("str", True),
    "status": ("str", True),
    "paper": ("table", True),
    "needs": ("table", True),
    "train": ("table", True),
    "probe": ("tables", True),
}
_PAPER = {"citation": ("str", True), "table": ("str", True)}
_NEEDS = {
    "datasets": ("strs", True),
    "hardware": ("str", True),
    "time": ("str", True),
    "time_basis": ("str", True),
}
_TRAIN = {
    "architecture": ("str", True),
    "dataset": ("str", True),
    "split": ("str", False),
    "resolution": ("whole", False),
    "steps": ("whole", False),
    "epochs": ("number", False),
    "batch_size": ("whole", False),
    "seed": ("whole", False),
    "set": ("table", False),
    "note": ("str", False),
}
_PROBE = {
    "name": ("str", True),
    "dataset": ("str", True),
    "train_split": ("str", False),
    "test_split": ("str", False),
    "val_split": ("str", False),
    "val_size": ("whole", False),
    "labels_per_class": ("whole", False),
    "draws": ("whole", False),
    "select_draws": ("whole", False),
    "seed": ("whole", False),
    "paper_metric": ("str", False),
    "paper_value": ("number", False),
    "paper_spread": ("number", False),
    "note": ("str", False),
}
_TYPE_WORDS = {
    "str": "a string",
    "strs": "a list of strings",
    "whole": "a whole number",
    "number": "a number",
    "table": "a table",
    "tables": "an array of tables ([[probe]])",
}


def _is(kind: str, value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return {
        "str": lambda v: isinstance(v, str) and v.strip() != "",
        "strs": lambda v: isinstance(v, list) and all(isinstance(s, str) for s in v),
        "whole": lambda v: isinstance(v, int),
        "number": lambda v: isinstance(v, int | float),
        "table": lambda v: isinstance(v, dict),
        "tables": lambda v: isinstance(v, list) and bool(v) and all(isinstance(t, dict) for t in v),
    }[kind](value)


def _checked(raw: Mapping[str, Any], schema: Mapping[str, tuple[str, bool]], where: str):
    """``raw`` with every key known, present where required and of its type."""
    unknown = sorted(set(raw) - set(schema))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(schema))}"
        )
    for key, (kind, required) in schema.items():
        if key not in raw:
            if required:
                raise ConfigError(f"{where}: '{key}' is missing ({_TYPE_WORDS[kind]})")
            continue
        if not _is(kind, raw[key]):
            raise ConfigError(f"{where}: '{key}' must be {_TYPE_WORDS[kind]}, not {raw[key]!r}")
    return raw


def _key(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class TrainSpec:
    """The training run: ``ganbench run ARCHITECTURE --dataset DATASET --seed SEED`` with
    every other value (split, resolution, length, batch size, ``set``) as ``--set``."""

    architecture: str
    dataset: str
    seed: int
    settings: dict[str, Any]
    note: str = ""

    @property
    def key(self) -> str:
        """Changes when anything that makes the run changes."""
        return _key([self.architecture, self.dataset, self.seed, self.settings])

    def command(self) -> str:
        """The equivalent command a user types."""
        argv = ["ganbench", "run", self.architecture, "--dataset", self.dataset]
        argv += ["--seed", str(self.seed)]
        for k, v in self.settings.items():
            if k in FLAGS:  # `ganbench run`'s own flags, as a user types them
                argv += [f"--{k.replace('_', '-')}", text(v)]
        for k, v in self.settings.items():
            if k not in FLAGS:
                argv += ["--set", f"{k}={text(v)}"]
        return shlex.join(argv)


@dataclass(frozen=True)
class ProbeSpec:
    """One ``ganbench probe`` of the trained run, and the paper's number for it."""

    name: str
    dataset: str
    options: dict[str, Any]
    paper_metric: str | None
    paper_value: float | None
    paper_spread: float | None
    note: str = ""

    @property
    def labels_per_class(self) -> int | None:
        return self.options.get("labels_per_class")

    def args(self) -> list[str]:
        """The probe command's options (after RUN_ID)."""
        argv = ["--dataset", self.dataset]
        for key, value in self.options.items():
            argv += [f"--{key.replace('_', '-')}", str(value)]
        return argv

    @property
    def key(self) -> str:
        return _key(self.args())

    def command(self) -> str:
        return shlex.join(["ganbench", "probe", "RUN_ID", *self.args()])


@dataclass(frozen=True)
class Recipe:
    name: str
    title: str
    setting: str
    claim: str
    status: str
    citation: str
    table: str
    needs: dict[str, Any]
    train: TrainSpec
    probes: tuple[ProbeSpec, ...]
    stands_in_for: str | None = None
    source: str = ""

    @property
    def stand_in(self) -> bool:
        return self.setting == "stand-in"


def text(value: Any) -> str:
    """A value as ``--set`` takes it."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _train(raw: dict[str, Any], where: str) -> TrainSpec:
    raw = _checked(raw, _TRAIN, f"{where}: [train]")
    if ("steps" in raw) == ("epochs" in raw):
        raise ConfigError(f"{where}: [train] needs 'steps' or 'epochs' (one of them)")
    settings: dict[str, Any] = {}
    for key in FLAGS:
        if key in raw:
            settings[key] = raw[key]
    for key, value in raw.get("set", {}).items():
        if key in settings or key == "seed" or key in ("steps", "epochs", "d_steps"):
            raise ConfigError(
                f"{where}: [train.set] '{key}' belongs in [train] itself (or is given twice)"
            )
        if not isinstance(value, str | int | float | bool):
            raise ConfigError(f"{where}: [train.set] '{key}' must be a string, number or boolean")
        settings[key] = value
    for key in ("steps", "resolution", "batch_size"):
        if key in settings and settings[key] < 1:
            raise ConfigError(f"{where}: [train] '{key}' must be at least 1")
    if "epochs" in settings and settings["epochs"] <= 0:
        raise ConfigError(f"{where}: [train] 'epochs' must be positive")
    return TrainSpec(
        raw["architecture"], raw["dataset"], raw.get("seed", 0), settings, raw.get("note", "")
    )


def _probe(raw: dict[str, Any], where: str, paper: bool) -> ProbeSpec:
    raw = _checked(raw, _PROBE, where)
    name = check_folder_name(raw["name"], "probe name", "all-labels", error=ConfigError)
    where = f"{where.rsplit(':', 1)[0]}: [[probe]] {name!r}"
    keys = ("train_split", "test_split", "val_split", "val_size", "labels_per_class")
    options = {k: raw[k] for k in (*keys, "draws", "select_draws", "seed") if k in raw}
    per_class = raw.get("labels_per_class")
    if per_class is None and ("draws" in raw or "select_draws" in raw):
        raise ConfigError(f"{where}: 'draws' and 'select_draws' need 'labels_per_class'")
    for key in ("labels_per_class", "draws", "select_draws"):
        if key in raw and raw[key] < 1:
            raise ConfigError(f"{where}: '{key}' must be at least 1")
    if "val_size" in raw and "val_split" in raw:
        raise ConfigError(f"{where}: 'val_size' and 'val_split' exclude each other; give one")
    metric, value = raw.get("paper_metric"), raw.get("paper_value")
    if paper and (metric is None or value is None):
        raise ConfigError(f"{where}: a paper recipe's probe needs 'paper_metric' and 'paper_value'")
    if (metric is None) != (value is None):
        raise ConfigError(f"{where}: give 'paper_metric' and 'paper_value' together")
    if metric is not None and metric not in METRICS:
        raise ConfigError(f"{where}: 'paper_metric' must be {' or '.join(METRICS)}, not {metric!r}")
    for key in ("paper_value", "paper_spread"):
        if key in raw and not 0 <= raw[key] <= 1:
            raise ConfigError(f"{where}: '{key}' is a fraction in [0, 1] (0.828, not 82.8)")
    if "paper_spread" in raw and value is None:
        raise ConfigError(f"{where}: 'paper_spread' needs 'paper_value'")
    return ProbeSpec(
        name,
        raw["dataset"],
        options,
        metric,
        None if value is None else float(value),
        None if raw.get("paper_spread") is None else float(raw["paper_spread"]),
        raw.get("note", ""),
    )


def parse(text_: str, where: str) -> Recipe:
    """A recipe from TOML text; every mistake one line naming ``where`` and the key."""
    try:
        raw = tomllib.loads(text_)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where} is not valid TOML: {exc}") from None
    _checked(raw, _TOP, where)
    name = check_folder_name(raw["name"], "claim name", "table1-cifar10", pattern=LOWER_NAME,
                             error=ConfigError)  # fmt: skip
    setting = raw["setting"]
    if setting not in SETTINGS:
        raise ConfigError(f"{where}: 'setting' must be {' or '.join(SETTINGS)}, not {setting!r}")
    stands_in_for = raw.get("stands_in_for")
    if (setting == "stand-in") != (stands_in_for is not None):
        raise ConfigError(
            f"{where}: a stand-in recipe names the paper recipe it stands in for"
            " ('stands_in_for'), and only a stand-in does"
        )
    paper = _checked(raw["paper"], _PAPER, f"{where}: [paper]")
    needs = _checked(raw["needs"], _NEEDS, f"{where}: [needs]")
    if needs["time_basis"] not in TIME_BASES:
        raise ConfigError(
            f"{where}: [needs] 'time_basis' must be {' or '.join(TIME_BASES)} (say which the"
            f" time is), not {needs['time_basis']!r}"
        )
    probes = tuple(
        _probe(t, f"{where}: [[probe]] {i + 1}", setting == "paper")
        for i, t in enumerate(raw["probe"])
    )
    names = [p.name for p in probes]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: two [[probe]] tables have the same name: {names}")
    return Recipe(
        name=name,
        title=raw["title"],
        setting=setting,
        claim=raw["claim"],
        status=raw["status"],
        citation=paper["citation"],
        table=paper["table"],
        needs=dict(needs),
        train=_train(raw["train"], where),
        probes=probes,
        stands_in_for=stands_in_for,
        source=where,
    )


BUILTIN = "ganbench.claims.builtin"


def builtin_names() -> list[str]:
    return packaged.toml_names(BUILTIN)


def builtin_text(name: str) -> str:
    return packaged.toml_text(BUILTIN, name)


def load(ref: str) -> Recipe:
    """A recipe file (a path, or anything ending in .toml) or a built-in name."""
    path = Path(ref).expanduser()
    if path.suffix == ".toml" or path.is_file():  # a folder named like a claim is not one
        try:
            return parse(path.read_text(), str(path))
        except FileNotFoundError:
            raise UsageError(f"recipe file {path} does not exist") from None
        except OSError as exc:
            raise UsageError(f"cannot read recipe file {path}: {exc.strerror}") from None
    if ref in builtin_names():
        return parse(builtin_text(ref), f"built-in claim {ref}")
    raise UsageError(
        f"no recipe file or built-in claim named {ref!r}; built-in: {', '.join(builtin_names())}"
        " (ganbench claim list)"
    )
