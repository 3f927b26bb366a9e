"""The model zoo: trained generators as ONNX files with metadata, an index of them with
checksums, a verified download cache, and generation with onnxruntime alone.

Only :mod:`ganbench.zoo.export` and :mod:`ganbench.zoo.registry` need torch or MLflow;
everything a user runs to pull and sample a generator imports neither.

May import: ganbench.errors, ganbench.files, ganbench.hparams, ganbench.images,
ganbench.progress, ganbench.signals, ganbench.plugins, ganbench.data, ganbench.metrics,
ganbench.rundir, ganbench.tracking, ganbench.training, ganbench.runs (and the package root
``ganbench``); tests/test_layers.py checks it.
"""
