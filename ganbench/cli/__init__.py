"""The ``ganbench`` command line (``ganbench.cli:main``); each command group is a module."""

from ganbench.cli.app import cli, main

__all__ = ["cli", "main"]
