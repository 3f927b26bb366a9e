"""Delivering a run folder's waiting records after the fact (``ganbench sync``), and
finding the folders under a cache that have some.

A folder is delivered by the same writer that training uses, started for it here, under
the folder's lock (a live run delivers its own). What the writer set aside or why it
stopped is handed back, for the command to name.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ganbench.tracking.outbox import problems
from ganbench.tracking.outbox.journal import pending_in


@dataclass
class Synced:
    """What one folder's delivery did."""

    path: Path
    run_id: str
    uri: str
    #: Records waiting when it began (0: nothing to do).
    waiting: int
    #: Records still waiting when it ended (the store stayed away, or the writer stopped).
    left: int = 0
    #: One line per record set aside now (the first ones), and how many in all.
    rejections: list[str] = field(default_factory=list)
    rejected: int = 0
    #: Why the writer stopped, when it did.
    failure: str | None = None
    #: The run's MLflow status after delivery ("?" when the store did not say).
    status: str = "?"

    @property
    def complete(self) -> bool:
        return not (self.left or self.rejected or self.failure)

    @property
    def rejected_file(self) -> Path:
        return self.path / "outbox" / problems.REJECTED


def deliver(
    path: Path,
    tracking_uri: str | None,
    timeout: float,
    *,
    progress: bool,
    say: Callable[[str], None],
) -> Synced:
    """Deliver the waiting records of run folder ``path`` within ``timeout`` seconds (to
    ``tracking_uri``, else the store the run used). Raises RunInUse for a live run,
    TrackingError for a store that does not answer."""
    from ganbench.progress import ItemProgress
    from ganbench.rundir.folder import RunFolder
    from ganbench.tracking.outbox.tracker import OutboxTracker
    from ganbench.tracking.store import route_mlflow_logs
    from ganbench.tracking.tracker import MlflowTracker, resolve_tracking_uri

    folder = RunFolder.open(Path(path))
    folder.lock()
    try:
        uri = resolve_tracking_uri(tracking_uri or folder.tracking_uri)
        waiting = pending_in(folder.path / "outbox")
        result = Synced(folder.path, folder.run_id, uri, waiting)
        if not waiting:  # a writer that stopped left nothing behind: nothing to show
            problems.clear_failure(folder.path / "outbox")
            return result
        existing = MlflowTracker.existing(uri, folder.run_id)
        route_mlflow_logs(folder.path / "logs" / "mlflow.log")
        tracker = OutboxTracker(existing, folder, say, background=False)
        writer = tracker.writer
        deadline = time.monotonic() + timeout
        with ItemProgress(waiting, "delivering", unit="records", enabled=progress) as bar:
            done = 0
            while writer.delivered_ops < waiting and writer.running:
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.1)
                bar.advance(writer.delivered_ops - done)
                done = writer.delivered_ops
        result.left = tracker.close(max(0.0, deadline - time.monotonic()))
        result.rejections, result.rejected = writer.rejections, writer.rejected_ops
        result.failure = writer.failure
        try:
            result.status = existing.client.get_run(folder.run_id).info.status
        except Exception:  # the store went away again: the count above says enough
            result.status = "?"
        return result
    finally:
        folder.unlock()


def waiting_folders(cache: Path) -> Iterator[Path]:
    """Run folders under ``cache`` (training runs in ``runs/``, commands' outboxes in
    ``outbox/``) with records waiting, oldest first."""
    from ganbench.rundir.folder import RunFolder

    found = []
    for kind in ("runs", "outbox"):
        root = cache / kind
        if not root.is_dir():
            continue
        for path in root.iterdir():
            if RunFolder.is_run_folder(path) and pending_in(path / "outbox"):
                found.append((path.stat().st_mtime, path))
    for _, path in sorted(found):
        yield path


def named(result: Synced, most: int = 2) -> str:
    """The records set aside, in a few words for one line."""
    names = result.rejections[:most]
    more = result.rejected - len(names)
    return "; ".join(names) + (f"; and {more} more" if more > 0 else "")
