"""Moved to :mod:`ganbench.signals` (this old path warns, and goes in 0.3)."""

from ganbench._moved import moved

moved(__name__, "ganbench.signals")
