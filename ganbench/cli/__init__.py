"""The ``ganbench`` command line (``ganbench.cli:main``); each command group is a module.

May import: every package of ganbench but ganbench.testing (and the package root
``ganbench``); tests/test_layers.py checks it.
"""

from ganbench.cli.app import cli, main

__all__ = ["cli", "main"]
