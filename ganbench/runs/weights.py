"""The weights a short command (``eval``, ``probe``, ``analyze``, ``zoo export``) works on,
as its options name them: RUN_ID|CHECKPOINT, ``--checkpoint``, ``--tracking-uri``,
``--cache-dir`` and ``--device``.

Each of those commands loads the plugins' registries, finds the cache, resolves the device
and opens the run (its folder on this machine first, MLflow second:
:func:`ganbench.runs.target.open_target`). A :class:`RunWeights` does each step once and
only when asked, so a command still checks its own options between the steps, in the
order it always did, and fails with the same message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from ganbench.runs.reopen import LoadedRun, Which
from ganbench.runs.target import Say, Target, open_target

if TYPE_CHECKING:
    import torch

    from ganbench.plugins import Registries


def _load_registries() -> Registries:
    from ganbench.plugins import load_registries

    return load_registries()


@dataclass
class RunWeights:
    """Which run's (or checkpoint file's) weights a command reads, and on which device."""

    #: An MLflow run ID, a run folder or a checkpoint file.
    ref: str
    which: Which
    #: ``--tracking-uri`` (None: the run folder's store, else the default).
    tracking_uri: str | None
    #: ``--cache-dir`` (None: ``$GANBENCH_CACHE_DIR`` or the user cache folder).
    cache_dir: str | None
    #: ``--device``: auto, cpu or cuda[:N].
    device: str = "auto"
    #: Where "skipping a damaged checkpoint" goes (None: nowhere).
    say: Say | None = None
    #: The plugins, loaded when the object is made unless the command loaded them already.
    registries: Registries = field(default_factory=_load_registries, kw_only=True)

    @cached_property
    def cache(self) -> Path:
        from ganbench.data.paths import cache_root

        return cache_root(self.cache_dir)

    @cached_property
    def torch_device(self) -> torch.device:
        """``--device`` resolved (a GPU asked for and absent: a usage error)."""
        from ganbench.training.devices import resolve_device

        return resolve_device(self.device)

    def open(self) -> tuple[LoadedRun, Target | None]:
        """The model with the chosen checkpoint's weights (on the CPU), and the run to log
        into (None for a checkpoint file)."""
        return open_target(
            self.ref, self.registries, self.which, self.tracking_uri, self.cache, self.say
        )
