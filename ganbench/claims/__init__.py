"""Claims: one of the paper's numbers as one command. A recipe (TOML) says how the number
was made (train this, probe it so) and what the paper reports; ``ganbench claim run``
trains and probes through the real commands, resumably, and reports ganbench's number
beside the paper's, saying whether they can be compared at all.

May import: ganbench.errors, ganbench.files, ganbench.hparams, ganbench.images,
ganbench.progress, ganbench.signals, ganbench.plugins, ganbench.data, ganbench.metrics,
ganbench.rundir, ganbench.tracking, ganbench.training, ganbench.runs, ganbench.probe,
ganbench.study (and the package root ``ganbench``); tests/test_layers.py checks it.
"""
