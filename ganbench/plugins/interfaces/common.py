"""Types shared by several plugin kinds: the shape of the images a model makes or a dataset
yields. Its own module so that the model and dataset interfaces need not import each other.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ImageShape:
    """Channels and square resolution of the images a model makes or a dataset yields, and
    the classes their labels name (0: unlabelled, or labels a model is not to use)."""

    channels: int
    resolution: int
    num_classes: int = 0
