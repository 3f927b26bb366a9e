"""Moved to :mod:`ganbench.rundir.checkpoint` (this old path warns, and goes in 0.3)."""

from ganbench._moved import moved

moved(__name__, "ganbench.rundir.checkpoint")
