"""Runs as a service: starting one, resuming it (and changing its budget), syncing its
records, reopening a trained run, its status, the run a command works on.

May import: ganbench.errors, ganbench.files, ganbench.hparams, ganbench.images,
ganbench.progress, ganbench.signals, ganbench.plugins, ganbench.data, ganbench.metrics,
ganbench.rundir, ganbench.tracking, ganbench.training (and the package root ``ganbench``);
tests/test_layers.py checks it.
"""

from ganbench._moved import moved_attribute


def __getattr__(name: str) -> object:
    return moved_attribute(__name__, "ganbench.runs.reopen", name)
