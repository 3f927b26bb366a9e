"""Dataset files: where they live, downloading them, decoding and preparing them.

May import: ganbench.errors, ganbench.files, ganbench.hparams, ganbench.images,
ganbench.progress, ganbench.signals, ganbench.plugins (and the package root ``ganbench``);
tests/test_layers.py checks it.
"""
