"""The environment variable that names a local digits-cnn weights file.

Shared by the extractor's declaration (:mod:`ganbench_plugins.digits`) and the loader that
reads it (:mod:`ganbench_plugins.digits.classifier`), so neither imports the other for it.
"""

from __future__ import annotations

#: Names a local digits-cnn weights file to use instead of the bundled one.
WEIGHTS_ENV = "GANBENCH_DIGITS_CNN_WEIGHTS"
