"""Analyses of trained runs (``ganbench analyze``): the context they run in, and recording.

Analyses themselves are plugins (``ganbench_register_analyses``); the built-in ones live in
``ganbench_plugins.analyses``.
"""

from ganbench.analysis.context import AnalysisContext, as_uint8, prior_latents

__all__ = ["AnalysisContext", "as_uint8", "prior_latents"]
