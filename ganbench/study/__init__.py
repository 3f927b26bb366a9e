"""Studies: variants x seeds as MLflow parent and nested runs, on Optuna.

May import: ganbench.errors, ganbench.files, ganbench.hparams, ganbench.images,
ganbench.progress, ganbench.signals, ganbench.plugins, ganbench.data, ganbench.metrics,
ganbench.rundir, ganbench.tracking, ganbench.training, ganbench.runs (and the package root
``ganbench``); tests/test_layers.py checks it.
"""
