"""Moved to :mod:`ganbench.runs.resume` (this old path warns, and goes in 0.3)."""

from ganbench._moved import moved

moved(__name__, "ganbench.runs.resume")
