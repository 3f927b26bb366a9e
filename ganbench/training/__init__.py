"""The training runner: plans a run from its inputs, trains, tracks.

May import: ganbench.errors, ganbench.files, ganbench.hparams, ganbench.images,
ganbench.progress, ganbench.signals, ganbench.plugins, ganbench.data, ganbench.metrics,
ganbench.rundir, ganbench.tracking (and the package root ``ganbench``); tests/test_layers.py
checks it.
"""
