"""The model zoo: trained generators as ONNX files with metadata, an index of them with
checksums, a verified download cache, and generation with onnxruntime alone.

Only :mod:`ganbench.zoo.export` and :mod:`ganbench.zoo.registry` need torch or MLflow;
everything a user runs to pull and sample a generator imports neither.
"""
