"""Where and how a study runs, apart from what it is (the :class:`Study`).

Its own module because every part of a running study reads it (planning the trials,
launching them, recording them, the engine that composes those), and none of them should
import another to learn it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class StudyOptions:
    """Where and how a study runs (not what it is: that is the :class:`Study`)."""

    storage_url: str
    tracking_uri: str
    experiment: str
    cache: Path
    devices: list[str]
    jobs: int
    data_args: list[str] = field(default_factory=list)
    #: ``--trials N``: a search with this sampler instead of the grid.
    trials: int | None = None
    sampler: str = "tpe"
    progress: bool = True
    #: ``--nproc N``: every trial data-parallel over N processes (torchrun on this
    #: machine), its batch the global batch, rank 0 tracking: as ``ganbench run --nproc``.
    nproc: int | None = None

    @property
    def mode(self) -> str:
        """The mode recorded in the Optuna study: grid, or search with ``--trials N``."""
        return "grid" if self.trials is None else "search"
