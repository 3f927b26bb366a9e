"""A training progress bar: step, losses, images/s, elapsed and ETA (rich, on stderr).

May import: ganbench.errors (and the package root ``ganbench``); tests/test_layers.py checks
it.
"""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class TrainingProgress:
    """Context manager; ``enabled=False`` makes every call a no-op (tests, benchmarks)."""

    def __init__(self, total: int, description: str, enabled: bool = True, start: int = 0) -> None:
        self.enabled = enabled
        self.total = total
        console = Console(stderr=True)
        # Without a terminal (CI logs, pipes) a live bar cannot redraw: print a plain line
        # at every tenth of the run instead.
        self._plain = enabled and not console.is_terminal
        self._tenths_done = start * 10 // max(total, 1)
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            disable=not enabled or self._plain,
        )
        self._task = self._progress.add_task(description, total=total, completed=start, stats="")

    def __enter__(self) -> TrainingProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def advance(self, step: int, stats: dict[str, float] | None = None) -> None:
        if stats is None:
            self._progress.update(self._task, completed=step)
            return
        text = "  ".join(
            f"{k}={v:,.0f}" if k == "images_per_sec" else f"{k}={v:.3f}" for k, v in stats.items()
        )
        text = text.replace("images_per_sec", "img/s")
        self._progress.update(self._task, completed=step, stats=text)
        if self._plain and step * 10 >= (self._tenths_done + 1) * self.total:
            eta = self._progress.tasks[0].time_remaining
            eta_text = f"ETA {eta:.0f}s" if eta is not None else ""
            self._progress.console.print(f"step {step}/{self.total}  {text}  {eta_text}")
            self._tenths_done = step * 10 // self.total


class ByteProgress:
    """A download bar: bytes, transfer rate and ETA (total may be unknown)."""

    def __init__(self, total: int | None, description: str, enabled: bool = True) -> None:
        from rich.progress import DownloadColumn, TransferSpeedColumn

        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            disable=not enabled,
        )
        self._task = self._progress.add_task(description, total=total)

    def __enter__(self) -> ByteProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def advance(self, n: int) -> None:
        self._progress.advance(self._task, n)


class ItemProgress:
    """A bar over items (images decoded, files checked): count, rate and ETA."""

    def __init__(
        self,
        total: int,
        description: str,
        unit: str = "img",
        enabled: bool = True,
        start: int = 0,
    ) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            disable=not enabled,
        )
        self._unit = unit
        self._task = self._progress.add_task(description, total=total, completed=start, rate="")

    def __enter__(self) -> ItemProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def log(self, text: str) -> None:
        """A line above the bar (what the last item did), shown only when the bar is."""
        if not self._progress.disable:
            self._progress.console.print(text, highlight=False, markup=False)

    def advance(self, n: int = 1) -> None:
        task = self._progress.tasks[0]
        speed = task.speed
        rate = ""
        if speed:  # slow items (a study's trials) read better per minute
            rate = (
                f"{speed:,.0f} {self._unit}/s"
                if speed >= 1
                else f"{speed * 60:.2g} {self._unit}/min"
            )
        self._progress.update(self._task, advance=n, rate=rate)
