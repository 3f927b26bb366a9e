"""Sample-quality scoring: features, cached real statistics, the Frechet distance.

May import: ganbench.errors, ganbench.files, ganbench.hparams, ganbench.images,
ganbench.progress, ganbench.signals, ganbench.plugins, ganbench.data (and the package root
``ganbench``); tests/test_layers.py checks it.
"""
