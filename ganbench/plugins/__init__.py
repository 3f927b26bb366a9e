"""Loading plugins and building the registries they fill.

Built-in and third-party plugins come through the same ``ganbench`` entry-point group.
``GANBENCH_DISABLE_PLUGINS=a,b`` blocks plugins by entry-point name (e.g. a broken one).

May import: ganbench.errors, ganbench.files, ganbench.hparams, ganbench.images,
ganbench.progress, ganbench.signals (and the package root ``ganbench``);
tests/test_layers.py checks it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from ganbench.errors import GanbenchError
from ganbench.plugins import hookspecs
from ganbench.plugins.interfaces import Analysis, Architecture, Dataset, FeatureExtractor, Metric
from ganbench.plugins.registry import Registrar, Registry

ENTRY_POINT_GROUP = "ganbench"
DISABLE_ENV = "GANBENCH_DISABLE_PLUGINS"


@dataclass
class PluginInfo:
    """Where a plugin came from and what it registered, for ``ganbench plugins``."""

    name: str
    source: str
    registers: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class Registries:
    """Everything the loaded plugins registered, plus where each plugin came from."""

    architectures: Registry[Architecture]
    datasets: Registry[Dataset]
    metrics: Registry[Metric]
    extractors: Registry[FeatureExtractor]
    analyses: Registry[Analysis]
    plugins: list[PluginInfo]

    def by_kind(self) -> dict[str, Registry[Any]]:
        return {
            "architectures": self.architectures,
            "datasets": self.datasets,
            "metrics": self.metrics,
            "extractors": self.extractors,
            "analyses": self.analyses,
        }


class PluginManager(pluggy.PluginManager):
    """pluggy's manager that also remembers which package each plugin came from."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT)
        self.add_hookspecs(hookspecs)
        self.origins: dict[str, str] = {}


def get_plugin_manager(
    *, load_entrypoints: bool = True, extra: Iterable[tuple[str, object]] = ()
) -> PluginManager:
    """A new plugin manager with the entry-point plugins and ``extra`` (name, plugin) pairs."""
    pm = PluginManager()
    for name in filter(None, (s.strip() for s in os.environ.get(DISABLE_ENV, "").split(","))):
        pm.set_blocked(name)
    if load_entrypoints:
        _load_entrypoints(pm)
    for name, plugin in extra:
        pm.register(plugin, name=name)
    pm.check_pending()
    return pm


def _load_entrypoints(pm: PluginManager) -> None:
    # pluggy's load_setuptools_entrypoints does this too, but an import error there does
    # not say which plugin or package broke; here it does.
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if pm.is_blocked(ep.name) or pm.get_plugin(ep.name) is not None:
            continue
        dist = getattr(ep, "dist", None)
        origin = f"{dist.name} {dist.version}" if dist else "unknown package"
        try:
            plugin = ep.load()
        except Exception as exc:
            raise GanbenchError(
                f"plugin {ep.name!r} ({ep.value} from {origin}) failed to import: {exc}."
                f" Reinstall that package or block it with {DISABLE_ENV}={ep.name}."
            ) from exc
        pm.register(plugin, name=ep.name)
        pm.origins[ep.name] = f"entry point {ep.value} from {origin}"


def load_registries(pm: PluginManager | None = None) -> Registries:
    """Call every plugin's registration hooks and return the filled registries."""
    pm = pm if pm is not None else get_plugin_manager()
    registries = Registries(
        architectures=Registry("architecture", Architecture),
        datasets=Registry("dataset", Dataset),
        metrics=Registry("metric", Metric),
        extractors=Registry("feature extractor", FeatureExtractor),
        analyses=Registry("analysis", Analysis),
        plugins=[],
    )
    infos: dict[str, PluginInfo] = {}
    for name, plugin in pm.list_name_plugin():
        source = pm.origins.get(name, "registered directly")
        module = getattr(plugin, "__file__", None)
        infos[name] = PluginInfo(name, f"{source}; {module}" if module else source)
    for kind, registry in registries.by_kind().items():
        hook = getattr(pm.hook, f"ganbench_register_{kind}")
        # pluggy's own hook call does not say which plugin added what, which the duplicate
        # error must name, so each implementation gets a registrar bound to its plugin.
        for impl in hook.get_hookimpls():  # in registration order: built-ins first
            before = set(registry.names())
            impl.function(registry=Registrar(registry, impl.plugin_name))
            added = sorted(set(registry.names()) - before)
            if added:
                infos[impl.plugin_name].registers[kind] = added
    registries.plugins = [infos[n] for n in sorted(infos)]
    return registries
