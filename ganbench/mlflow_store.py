"""Moved to :mod:`ganbench.tracking.store` (this old path warns, and goes in 0.3)."""

from ganbench._moved import moved

moved(__name__, "ganbench.tracking.store")
