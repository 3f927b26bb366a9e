"""Hyperparameters as data: typed dataclasses, strict TOML presets and ``--set key=value``.

Every value is converted to its field's declared type, and an unknown key is an error that
lists the close matches: a misspelt hyperparameter must never be silently ignored. A
numeric field may declare the values it allows (:func:`ranged`); a value outside them is
refused when it is given, before any run exists (a negative learning rate used to fail
inside Adam, with an MLflow run and a run folder already made).

May import: ganbench.errors (and the package root ``ganbench``); tests/test_layers.py checks
it.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganbench.errors import ConfigError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
#: The metadata key under which a field keeps its :class:`Range`.
RANGE = "ganbench.range"


@dataclass(frozen=True)
class Range:
    """The values a numeric setting allows: bounds, each inclusive or not (None: open)."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    #: The allowed values in words, when the bounds alone say too little ("0 (none) or
    #: a number of units").
    text: str | None = None

    def allows(self, value: float) -> bool:
        # written so that NaN fails every bound
        return (
            (self.ge is None or value >= self.ge)
            and (self.gt is None or value > self.gt)
            and (self.le is None or value <= self.le)
            and (self.lt is None or value < self.lt)
        )

    def describe(self) -> str:
        """``more than 0``, ``from 0 to 4294967295``, ``at least 0 and below 1``, ..."""
        if self.text:
            return self.text
        low = (
            f"at least {_num(self.ge)}"
            if self.ge is not None
            else (f"more than {_num(self.gt)}" if self.gt is not None else "")
        )
        high = (
            f"at most {_num(self.le)}"
            if self.le is not None
            else (f"below {_num(self.lt)}" if self.lt is not None else "")
        )
        if self.ge is not None and self.le is not None:
            return f"from {_num(self.ge)} to {_num(self.le)}"
        return " and ".join(p for p in (low, high) if p) or "a finite number"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def ranged(
    default: Any,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    text: str | None = None,
) -> Any:
    """A dataclass field with ``default`` whose values must lie in the given bounds
    (``ge``/``le`` inclusive, ``gt``/``lt`` exclusive; None, for an optional field, is
    always allowed; ``text`` says them in words in the error). For the runner's settings
    and any plugin's config (refused by ``--set``, TOML files and presets alike; call
    :func:`check_ranges` in ``__post_init__`` to refuse them in code too)::

        lr: float = ranged(0.0002, gt=0)
        beta1: float = ranged(0.5, ge=0, lt=1)
    """
    return dataclasses.field(default=default, metadata={RANGE: Range(ge, gt, le, lt, text)})


def check_value(key: str, value: Any, field: dataclasses.Field | None, source: str = "") -> None:
    """Refuse a number outside ``field``'s declared range, and any float that is not
    finite (NaN or infinite: no setting means either), in one line naming the fix."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    where = f" (in {source})" if source else ""
    rule = field.metadata.get(RANGE) if field is not None else None
    if isinstance(value, float) and not math.isfinite(value):
        allowed = rule.describe() if rule else "a finite number"
        raise ConfigError(f"{key} must be {allowed}; got {value}{where}")
    if rule is not None and not rule.allows(value):
        raise ConfigError(f"{key} must be {rule.describe()}; got {value}{where}")


def check_ranges(config: Any, source: str = "") -> None:
    """Check every field of dataclass ``config`` (see :func:`check_value`)."""
    for f in dataclasses.fields(config):
        check_value(f.name, getattr(config, f.name), f, source)


def check_choices(config: Any) -> None:
    """Refuse a ``Literal``-typed field of dataclass ``config`` holding a value it does not
    list (a config built in code; ``--set`` and TOML values are checked as converted)."""
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        if typing.get_origin(hints[f.name]) is typing.Literal:
            allowed = typing.get_args(hints[f.name])
            value = getattr(config, f.name)
            if value not in allowed:
                raise ConfigError(
                    f"{f.name} must be one of {', '.join(map(str, allowed))}; got {value!r}"
                )


def parse_assignments(items: Iterable[str], option: str = "--set") -> dict[str, str]:
    """``["lr=0.001", "z_dim=64"]`` -> ``{"lr": "0.001", "z_dim": "64"}``."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{option} expects key=value, got {item!r} (e.g. {option} lr=0.0002)")
        out[key.strip()] = value.strip()
    return out


def load_toml(path: str | Path) -> dict[str, Any]:
    """A flat TOML table of hyperparameters."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    nested = [k for k, v in data.items() if isinstance(v, dict)]
    if nested:
        raise ConfigError(f"config file {path}: tables are not supported ({', '.join(nested)})")
    return data


def field_names(config_class: type) -> list[str]:
    return [f.name for f in dataclasses.fields(config_class)]


def convert(value: Any, annotation: Any, key: str) -> Any:
    """``value`` (a string from the CLI, or a TOML value) as the type ``annotation``."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        is_none = value is None or str(value).lower() in {"none", "null", ""}
        if is_none and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return convert(value, arg, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{key}: cannot use {value!r}")
    if origin is typing.Literal:
        text = str(value)
        if text not in [str(a) for a in args]:
            raise ConfigError(f"{key} must be one of {', '.join(map(str, args))}; got {value!r}")
        return next(a for a in args if str(a) == text)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text in _TRUE | _FALSE:
            return text in _TRUE
        raise ConfigError(f"{key} must be true or false; got {value!r}")
    if annotation in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{key} must be a number; got {value!r}")
        try:
            # A TOML value is already a number: convert only after the whole-number check
            # (int(1.5) would silently make 1 of it).
            if isinstance(value, str):
                number = _parse_number(value)
            else:
                number = value if isinstance(value, (int, float)) else float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key} must be {annotation.__name__}; got {value!r}") from None
        if annotation is int:
            if isinstance(number, float) and not number.is_integer():
                raise ConfigError(f"{key} must be a whole number; got {value!r}")
            return int(number)
        return float(number)
    if annotation is str:
        return str(value)
    raise ConfigError(f"{key}: unsupported type {annotation!r}")


def _parse_number(text: str) -> float | int:
    try:
        return int(text)
    except ValueError:
        return float(text)


def apply(config: Any, values: Mapping[str, Any], *, source: str) -> Any:
    """A copy of dataclass ``config`` with ``values`` (converted) applied; unknown keys fail."""
    hints = typing.get_type_hints(type(config))
    fields = {f.name: f for f in dataclasses.fields(config)}
    changes = {}
    for key, value in values.items():
        if key not in fields:
            raise unknown_key(key, fields, source)
        changes[key] = convert(value, hints[key], key)
        check_value(key, changes[key], fields[key], source)
    return dataclasses.replace(config, **changes)


def unknown_key(key: str, known: Iterable[str], source: str) -> ConfigError:
    known = sorted(known)
    close = difflib.get_close_matches(key, known, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return ConfigError(
        f"unknown hyperparameter {key!r} in {source}.{hint} Known: {', '.join(known)}"
    )


def as_params(config: Any) -> dict[str, str]:
    """The dataclass as MLflow params (every field, stringified; None as 'None')."""
    return {k: str(v) for k, v in dataclasses.asdict(config).items()}
