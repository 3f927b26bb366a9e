"""Shared settings for ganbench's own tests (fixtures live in ganbench.testing)."""

from __future__ import annotations

# Small enough to run in seconds on 2 CPU cores, big enough to exercise every code path:
# two sample grids before the final one, an intermediate checkpoint, several log points.
TINY_RUN = (
    "--steps",
    "6",
    "--batch-size",
    "16",
    "--set",
    "ngf=8",
    "--set",
    "ndf=8",
    "--set",
    "log_every=2",
    "--set",
    "sample_every=3",
    "--set",
    "checkpoint_every=4",
    "--no-progress",
)
