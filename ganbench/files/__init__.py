"""Files that appear whole, names that are safe as folder names, URLs opened safely and
shown without their passwords.

May import: ganbench.errors (and the package root ``ganbench``); tests/test_layers.py checks
it.
"""
