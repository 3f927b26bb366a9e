"""The interfaces an analysis plugin implements: an :class:`Analysis` declares its
:class:`AnalysisOption` list and returns an :class:`AnalysisResult`.

No PIL or torch at module level (only under ``TYPE_CHECKING``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage


@dataclass(frozen=True)
class AnalysisOption:
    """One option of an analysis, as ``ganbench analyze RUN NAME --<name> VALUE`` takes it."""

    name: str
    help: str
    #: str, int, float, bool (a --flag/--no-flag switch) or pathlib.Path (an existing file).
    type: type = str
    default: Any = None
    required: bool = False
    #: A one-letter short form (``n`` for ``-n``), or empty.
    short: str = ""


@dataclass
class AnalysisResult:
    """What an analysis found; the core writes it into the run under ``analysis/NAME/``."""

    #: key -> picture, written as ``analysis/NAME/key.png`` and logged as an MLflow image.
    pictures: dict[str, PILImage] = field(default_factory=dict)
    #: key -> number, logged as the metric ``analysis.NAME.key`` at the run's step.
    metrics: dict[str, float] = field(default_factory=dict)
    #: key -> text, set as the tag ``analysis.NAME.key`` (what was done, what it shows).
    notes: dict[str, str] = field(default_factory=dict)
    #: key -> JSON-able data, written as ``analysis/NAME/key.json`` (e.g. which maps dropped).
    tables: dict[str, Any] = field(default_factory=dict)
    #: Lines printed for the user after the run.
    lines: list[str] = field(default_factory=list)


class Analysis(ABC):
    """A way of looking inside a trained GAN (the DCGAN paper's Sections 4.1 and 6).

    ``ganbench analyze RUN_ID|CHECKPOINT NAME`` builds an
    :class:`ganbench.analysis.AnalysisContext` (the run's networks on the device, its
    data on request, seeded latents, progress bars) and calls :meth:`run`; the core then
    writes the result into the run. An analysis never logs by itself.
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    #: What it needs of the run: any of "generator", "discriminator", "data" (the
    #: training split and a held-out split of the run's dataset).
    needs: ClassVar[frozenset[str]] = frozenset({"generator"})
    options: ClassVar[tuple[AnalysisOption, ...]] = ()

    @abstractmethod
    def run(self, context: Any, options: Mapping[str, Any]) -> AnalysisResult:
        """Do the analysis; ``options`` holds every declared option by name (checked by
        the core's command line). Raise :class:`ganbench.errors.UsageError` for bad input."""
