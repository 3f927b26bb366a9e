"""Placeholder: being written."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ganbench.interfaces import Analysis, AnalysisResult


class GuidedBackprop(Analysis):
    name = "guided-backprop"
    summary = "(being written)"

    def run(self, context: Any, options: Mapping[str, Any]) -> AnalysisResult:
        raise NotImplementedError
