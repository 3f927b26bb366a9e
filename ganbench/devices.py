"""Choosing the device a run trains on."""

from __future__ import annotations

import torch

from ganbench.errors import UsageError

CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when a GPU is visible, else the CPU; ``cuda`` without one fails."""
    if name not in CHOICES and not name.startswith("cuda:"):
        raise UsageError(f"unknown device {name!r}; use one of {', '.join(CHOICES)}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(
            f"--device {name} asked for, but torch {torch.__version__} sees no CUDA GPU here;"
            " use --device cpu (or auto)"
        )
    return torch.device(name)
