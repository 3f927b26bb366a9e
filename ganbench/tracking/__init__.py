"""Where records go: the MLflow store, the run tracker, provenance tags and the outbox.

May import: ganbench.errors, ganbench.files, ganbench.hparams, ganbench.images,
ganbench.progress, ganbench.signals, ganbench.rundir (and the package root ``ganbench``);
tests/test_layers.py checks it.
"""

from ganbench._moved import moved_attribute


def __getattr__(name: str) -> object:
    return moved_attribute(__name__, "ganbench.tracking.tracker", name)
