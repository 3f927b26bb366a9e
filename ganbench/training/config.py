"""The runner's own settings: how long, how big, how often to log. Not the model's."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainConfig:
    """Run settings shared by every architecture (an architecture may change the defaults)."""

    #: Image size; None takes the dataset's default resolution.
    resolution: int | None = None
    batch_size: int = 64
    #: Length of training: steps wins over epochs when the later-given of the two is steps.
    steps: int | None = None
    #: Passes over the split (25 is the PyTorch DCGAN reference's default).
    epochs: float | None = 25.0
    seed: int = 0
    split: str = "train"
    #: A dataset's sub-set(s), comma-separated (LSUN scenes); None = the dataset's first.
    category: str | None = None
    #: Read losses back and log them every this many steps.
    log_every: int = 10
    #: Sample grid from the fixed z every this many steps; 0 = ten times per run.
    sample_every: int = 0
    #: Checkpoint every this many steps; 0 = only at the end.
    checkpoint_every: int = 0
    #: Number of images in a sample grid (from a fixed z, the same all run).
    grid_size: int = 64
    #: Score the generator every this many steps (and at the end); 0 = never.
    eval_every: int = 0
    #: Generated images per score during training (fewer than FID-50k: recorded in names).
    eval_samples: int = 10_000
    #: Comma-separated metrics scored during training; FID also picks the best checkpoint.
    eval_metrics: str = "fid"
    #: Feature extractor for those scores; empty = the dataset's default.
    eval_extractor: str = ""
