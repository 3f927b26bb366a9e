"""Moved to :mod:`ganbench.tracking.outbox` (this old path warns, and goes in 0.3).

A package of its own (not an alias of the new one), so ``ganbench.outbox.journal`` finds
its shim here and is the new module object, never a second copy of it.
"""

from ganbench._moved import moved_attribute, warn_moved

warn_moved(__name__, "ganbench.tracking.outbox")


def __getattr__(name: str) -> object:
    return moved_attribute(__name__, "ganbench.tracking.outbox", name)
