"""Old import paths that keep working for one release after a module moved.

The house was reorganised into packages by concern (issue 26); third-party plugins and
scripts importing the old paths get the same module objects, with a DeprecationWarning
that names the new path.

May import: nothing of ganbench (and the package root ``ganbench``); tests/test_layers.py
checks it.
"""

from __future__ import annotations

import importlib
import sys
import warnings

#: The release that drops the old paths.
REMOVED_IN = "0.3"


def warn_moved(old: str, new: str) -> None:
    """Warn the importer of ``old`` that it lives at ``new`` now."""
    warnings.warn(
        f"{old} moved to {new}; import it from there ({old} goes in ganbench {REMOVED_IN})",
        DeprecationWarning,
        stacklevel=3,
    )


def moved(old: str, new: str) -> None:
    """Make the module being imported as ``old`` the module ``new`` (one object, so
    classes compare equal whichever path imported them)."""
    warn_moved(old, new)
    sys.modules[old] = importlib.import_module(new)


def moved_attribute(old: str, new: str, name: str) -> object:
    """A package's ``__getattr__`` for names that lived in the module it replaced."""
    module = importlib.import_module(new)
    if name.startswith("__") or not hasattr(module, name):
        raise AttributeError(f"module {old!r} has no attribute {name!r}")
    warn_moved(f"{old}.{name}", f"{new}.{name}")
    return getattr(module, name)
