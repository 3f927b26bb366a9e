"""Analyses of trained runs (``ganbench analyze``): the context they run in, and recording.

Analyses themselves are plugins (``ganbench_register_analyses``); the built-in ones live in
``ganbench_plugins.analyses``.

May import: ganbench.errors, ganbench.files, ganbench.hparams, ganbench.images,
ganbench.progress, ganbench.signals, ganbench.plugins, ganbench.data, ganbench.metrics,
ganbench.rundir, ganbench.tracking, ganbench.training, ganbench.runs, ganbench.zoo (and the
package root ``ganbench``); tests/test_layers.py checks it.
"""

from ganbench.analysis.context import AnalysisContext, as_uint8, prior_latents

__all__ = ["AnalysisContext", "as_uint8", "prior_latents"]
