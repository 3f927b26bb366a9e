"""Moved to :mod:`ganbench.files.urls` (this old path warns, and goes in 0.3)."""

from ganbench._moved import moved

moved(__name__, "ganbench.files.urls")
