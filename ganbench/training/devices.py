"""Choosing the device a run trains on."""

from __future__ import annotations

import os

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


def available_memory() -> int | None:
    """Bytes of host memory a new allocation can get without swapping: Linux's
    MemAvailable (free memory plus reclaimable page cache). ``SC_AVPHYS_PAGES`` alone is
    MemFree, which a busy page cache drives near zero on a machine with plenty to spare
    (measured: it refused a 153 MB copy during a test run). None where neither is known."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return None
