"""The interfaces plugins implement: architectures, datasets and metrics.

The core codes against these alone and never imports a plugin. They import no torch at
module level, so listing plugins or printing help stays fast.

Plugins import every name from here (``from ganbench.plugins.interfaces import GanModel``);
the definitions live in one module per plugin kind: :mod:`.models` (architectures),
:mod:`.datasets`, :mod:`.metrics` (metrics and feature extractors), :mod:`.analyses`, and
:mod:`.common` for types several kinds share.
"""

from __future__ import annotations

# The reference page (docs/reference/interfaces.md) shows the classes in the order they are
# imported here: the shared shape, then architectures, datasets, metrics, analyses.
# isort: off
from ganbench.plugins.interfaces.common import ImageShape
from ganbench.plugins.interfaces.models import Speed, GanModel, Architecture
from ganbench.plugins.interfaces.datasets import (
    ImageArray,
    DatasetRequest,
    RemoteFile,
    ImageSource,
    Dataset,
)
from ganbench.plugins.interfaces.metrics import FeatureExtractor, LoadedExtractor, RealStats, Metric
from ganbench.plugins.interfaces.analyses import AnalysisOption, AnalysisResult, Analysis
# isort: on

__all__ = [
    "Analysis",
    "AnalysisOption",
    "AnalysisResult",
    "Architecture",
    "Dataset",
    "DatasetRequest",
    "FeatureExtractor",
    "GanModel",
    "ImageArray",
    "ImageShape",
    "ImageSource",
    "LoadedExtractor",
    "Metric",
    "RealStats",
    "RemoteFile",
    "Speed",
]
