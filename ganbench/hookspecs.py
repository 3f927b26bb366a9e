"""Moved to :mod:`ganbench.plugins.hookspecs` (this old path warns, and goes in 0.3)."""

from ganbench._moved import moved

moved(__name__, "ganbench.plugins.hookspecs")
