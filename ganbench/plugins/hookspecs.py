"""The hooks through which plugins extend ganbench.

Every hook receives a registrar and is called with keyword arguments only, so a spec can
gain arguments later without breaking existing plugins. Built-in plugins use exactly these
hooks, found through the ``ganbench`` entry-point group like any third-party package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from ganbench.plugins.interfaces import (
        Analysis,
        Architecture,
        Dataset,
        FeatureExtractor,
        Metric,
    )
    from ganbench.plugins.registry import Registrar

PROJECT = "ganbench"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def ganbench_register_architectures(registry: Registrar[Architecture]) -> None:
    """Register GAN architectures.

    :param registry: call ``registry.add(architecture)`` with an
        :class:`ganbench.plugins.interfaces.Architecture` instance for each architecture.
    """


@hookspec
def ganbench_register_datasets(registry: Registrar[Dataset]) -> None:
    """Register image datasets.

    :param registry: call ``registry.add(dataset)`` with a
        :class:`ganbench.plugins.interfaces.Dataset` instance for each dataset.
    """


@hookspec
def ganbench_register_metrics(registry: Registrar[Metric]) -> None:
    """Register sample-quality metrics.

    :param registry: call ``registry.add(metric)`` with a
        :class:`ganbench.plugins.interfaces.Metric` instance for each metric.
    """


@hookspec
def ganbench_register_extractors(registry: Registrar[FeatureExtractor]) -> None:
    """Register feature extractors for the metrics (Inception-v3, a digits classifier).

    :param registry: call ``registry.add(extractor)`` with a
        :class:`ganbench.plugins.interfaces.FeatureExtractor` instance for each extractor.
    """


@hookspec
def ganbench_register_analyses(registry: Registrar[Analysis]) -> None:
    """Register analyses of trained runs (``ganbench analyze RUN NAME``).

    :param registry: call ``registry.add(analysis)`` with an
        :class:`ganbench.plugins.interfaces.Analysis` instance for each analysis.
    """
