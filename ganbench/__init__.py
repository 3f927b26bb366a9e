"""ganbench: a plugin-based GAN benchmarking and model-zoo service.

Importing the package stays cheap (no torch, no mlflow) so that the CLI can print help fast.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ganbench")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
