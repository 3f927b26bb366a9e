"""``python -m ganbench``: the command line.

May import: ganbench.cli (and the package root ``ganbench``); tests/test_layers.py checks
it.
"""

from ganbench.cli import main

main()
