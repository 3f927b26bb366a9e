"""A Tracker whose every call is one journal line, delivered by a background writer."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ganbench.files.redact import safe_uri
from ganbench.files.sealed import atomic_path
from ganbench.tracking.outbox.delivery import Delivery
from ganbench.tracking.outbox.journal import COMPACT_BYTES, Journal
from ganbench.tracking.outbox.writer import Writer

if TYPE_CHECKING:
    from PIL.Image import Image

    from ganbench.rundir.folder import RunFolder
    from ganbench.tracking.tracker import MlflowTracker


def _now_ms() -> int:
    return int(time.time() * 1000)


class OutboxTracker:
    """Logs into the run folder's journal; MLflow gets it from the writer thread.

    ``skip`` holds (metric or image key, step) pairs MLflow already has from an earlier
    process of the same run (a resume): they are not logged a second time.
    """

    def __init__(
        self,
        run: MlflowTracker,
        folder: RunFolder,
        say: Callable[[str], None],
        skip: Collection[tuple[str, int]] = (),
        compact_bytes: int = COMPACT_BYTES,
        *,
        background: bool = True,
    ) -> None:
        from ganbench.tracking.store import fail_fast_http
        from ganbench.tracking.tracker import check_reachable

        fail_fast_http()
        self.run_id, self.run_name = run.run_id, run.run_name
        self.tracking_uri, self.artifact_uri = run.tracking_uri, run.artifact_uri
        self.experiment_id = run.experiment_id
        self.folder = folder
        self.skip = set(skip)
        self.journal = Journal(folder.path / "outbox", compact_bytes)

        def reachable() -> bool:
            try:
                check_reachable(run.tracking_uri, timeout=3)
            except Exception:
                return False
            return True

        delivery = Delivery(run.client, run.run_id, self.journal.folder)
        self.writer = Writer(
            self.journal,
            delivery,
            where=run.tracking_uri,
            say=say,
            reachable=reachable,
            background=background,
        ).start()

    def _put(self, op: dict[str, Any]) -> None:
        self.journal.append(op)
        self.writer.notify()

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._put({"op": "params", "params": {k: str(v) for k, v in params.items()}})

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        values = {k: float(v) for k, v in metrics.items() if (k, step) not in self.skip}
        if values:
            self._put({"op": "metrics", "step": step, "time": _now_ms(), "values": values})

    def log_image(self, image: Image, key: str, step: int) -> None:
        if (key, step) in self.skip:
            return
        path = self.journal.new_file(".png")
        # A file that lives until delivery: the fastest PNG compression (MLflow encodes
        # its own copy), so the training loop pays ~a tenth of level 6's time.
        with atomic_path(path) as tmp:
            image.save(tmp, format="PNG", compress_level=1)
        self._put(
            {
                "op": "image",
                "key": key,
                "step": step,
                "time": _now_ms(),
                "file": str(path.relative_to(self.journal.folder)),
            }
        )

    def log_artifact(
        self, path: Path, artifact_path: str | None = None, name: str | None = None
    ) -> None:
        """Upload ``path`` (kept in the run folder) as ``artifact_path/name``. The journal
        holds the path relative to the run folder, so a moved folder still delivers it."""
        source = Path(path).resolve()
        with contextlib.suppress(ValueError):  # outside the run folder: absolute
            source = source.relative_to(self.folder.path)
        op = {"op": "artifact", "path": str(source), "dir": artifact_path}
        self._put({**op, "name": name or Path(path).name})

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self._put({"op": "tags", "tags": {k: str(v) for k, v in tags.items()}})

    def delete_tag(self, key: str) -> None:
        self._put({"op": "delete_tag", "key": key})

    def set_status(self, status: str) -> None:
        self._put({"op": "status", "status": status, "time": _now_ms()})

    def finish(self, status: str) -> None:
        self.set_status(status)

    def flush(self) -> None:
        """Make everything logged so far durable (before a checkpoint), and let the writer
        fold a long delivered prefix of the journal away."""
        self.journal.sync()
        self.writer.request_compaction()

    def close(self, timeout: float) -> int:
        """Wait up to ``timeout`` s for MLflow to have everything; returns what is left."""
        left = self.writer.close(timeout)
        self.journal.close()
        return left

    def describe(self) -> str:
        return f"MLflow run {self.run_id} ({self.run_name}) in {safe_uri(self.tracking_uri)}"
