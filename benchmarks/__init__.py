"""ganbench's speed suite: ``python -m benchmarks --device cpu|cuda`` (see README.md)."""
