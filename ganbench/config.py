"""Hyperparameters as data: typed dataclasses, strict TOML presets and ``--set key=value``.

Every value is converted to its field's declared type, and an unknown key is an error that
lists the close matches: a misspelt hyperparameter must never be silently ignored.
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ganbench.errors import ConfigError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


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
    known = field_names(type(config))
    changes = {}
    for key, value in values.items():
        if key not in known:
            raise unknown_key(key, known, source)
        changes[key] = convert(value, hints[key], key)
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
