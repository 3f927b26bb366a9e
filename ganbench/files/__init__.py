"""Files that appear whole, names that are safe as folder names, URLs opened safely.

May import: ganbench.errors (and the package root ``ganbench``); tests/test_layers.py checks
it.
"""
