"""The zoo shipped with ganbench: ``index.toml``, model cards, and small ONNX generators.

Installed as the ``ganbench_zoo`` package so the index and its files travel with ganbench
and ``ganbench zoo pull`` works without a network.
"""
