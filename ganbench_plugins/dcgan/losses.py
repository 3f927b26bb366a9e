"""Moved to :mod:`ganbench.training.losses`, shared by every family (this old path warns,
and goes in 0.3)."""

from ganbench._moved import moved

moved(__name__, "ganbench.training.losses")
