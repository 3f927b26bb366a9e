"""A training run's folder on disk: what it is, who holds it, its heartbeat and checkpoints.

May import: ganbench.errors, ganbench.files, ganbench.hparams, ganbench.images,
ganbench.progress, ganbench.signals (and the package root ``ganbench``);
tests/test_layers.py checks it.
"""
