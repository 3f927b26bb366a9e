"""TOML files shipped inside a package (built-in studies, built-in claims), by name."""

from __future__ import annotations

from importlib import resources


def toml_names(package: str) -> list[str]:
    """The names (without ``.toml``) of the TOML files in ``package``, sorted."""
    return sorted(
        p.name.removesuffix(".toml")
        for p in resources.files(package).iterdir()
        if p.name.endswith(".toml")
    )


def toml_text(package: str, name: str) -> str:
    """The text of ``package``'s ``NAME.toml``."""
    return resources.files(package).joinpath(f"{name}.toml").read_text(encoding="utf-8")
