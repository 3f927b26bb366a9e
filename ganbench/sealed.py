"""Moved to :mod:`ganbench.files.sealed` (this old path warns, and goes in 0.3)."""

from ganbench._moved import moved

moved(__name__, "ganbench.files.sealed")
