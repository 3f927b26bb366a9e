"""Typed name -> object registries that plugins fill through the hooks in ``hookspecs``.

A registry is built per plugin manager (never an import-time global) and remembers which
plugin added each entry, so that duplicates and unknown names can be reported precisely.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

from ganbench.errors import DuplicateNameError, UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Objects of one kind (architectures, datasets, metrics), keyed by their ``name``."""

    def __init__(self, kind: str, base: type[T]) -> None:
        self.kind = kind
        self.base = base
        self._entries: dict[str, tuple[T, str]] = {}

    def add(self, obj: T, *, plugin: str) -> None:
        """Register ``obj`` under ``obj.name`` on behalf of ``plugin``."""
        if not isinstance(obj, self.base):
            raise TypeError(
                f"plugin {plugin!r} registered {obj!r} as a {self.kind}, but it is not a"
                f" {self.base.__module__}.{self.base.__qualname__}"
            )
        name = getattr(obj, "name", None)
        if not isinstance(name, str) or not name or name != name.strip():
            raise ValueError(f"plugin {plugin!r} registered a {self.kind} with no valid name")
        if name in self._entries:
            raise DuplicateNameError(self.kind, name, self._entries[name][1], plugin)
        self._entries[name] = (obj, plugin)

    def get(self, name: str) -> T:
        """The object registered as ``name``; :class:`UnknownNameError` lists what exists."""
        try:
            return self._entries[name][0]
        except KeyError:
            raise UnknownNameError(self.kind, name, self._entries) from None

    def plugin_of(self, name: str) -> str:
        """The name of the plugin that registered ``name``."""
        self.get(name)
        return self._entries[name][1]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[T]:
        return (self._entries[n][0] for n in self.names())

    def __len__(self) -> int:
        return len(self._entries)


class Registrar(Generic[T]):
    """What a hook implementation receives: adds to a registry on behalf of one plugin."""

    def __init__(self, registry: Registry[T], plugin: str) -> None:
        self._registry = registry
        self.plugin = plugin

    def add(self, obj: T) -> None:
        """Register ``obj`` (it must carry a unique ``name``)."""
        self._registry.add(obj, plugin=self.plugin)
