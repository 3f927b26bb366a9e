"""Turning journal ops into MlflowClient calls for one run.

Consecutive metrics, params and tags go as one ``log_batch`` each (within MLflow's
per-request limits), so a backlog after an outage drains in few requests. Delivering an
op twice is harmless: MLflow's SQL store drops a metric row identical to one it has (the
timestamp is the journal's, not the delivery's), params and tags are set to the same
values, artifacts overwrite themselves; images, which MLflow names with a random UUID,
are looked up before they are logged again.

A group MLflow refuses is delivered again one record, then one key, at a time by the
writer (:func:`pieces`), so that only what MLflow refuses is set aside. A file an op
uploads that is not there raises :class:`MissingFile`: the writer sets the op aside, loudly,
unless it is a rotated checkpoint.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ganbench.tracking.outbox.journal import Op

if TYPE_CHECKING:
    from mlflow import MlflowClient

#: MLflow's limits per log_batch request.
LIMITS = {"metrics": 1000, "params": 100, "tags": 100}
#: Where each batchable op keeps its items.
_ITEMS = {"metrics": "values", "params": "params", "tags": "tags"}


def _size(op: Op) -> int:
    return len(op[_ITEMS[op["op"]]])


def _conflicts(group: list[tuple[int, Op]], op: Op) -> bool:
    """Params ``op`` gives another value than one already in ``group``: merged, the later
    value would silently replace the earlier one, which MLflow must see (and refuse)."""
    if op["op"] != "params":
        return False
    merged = {k: v for _, g in group for k, v in g["params"].items()}
    return any(k in merged and merged[k] != v for k, v in op["params"].items())


def groups(batch: list[tuple[int, Op]]) -> Iterator[list[tuple[int, Op]]]:
    """Runs of consecutive ops of one batchable kind (within the limits); others alone."""
    group: list[tuple[int, Op]] = []
    for item in batch:
        kind = item[1]["op"]
        mergeable = kind in LIMITS
        if group and (
            not mergeable
            or group[0][1]["op"] != kind
            or sum(_size(op) for _, op in group) + _size(item[1]) > LIMITS[kind]
            or _conflicts(group, item[1])
        ):
            yield group
            group = []
        group.append(item)
        if not mergeable:
            yield group
            group = []
    if group:
        yield group


def pieces(op: Op) -> list[Op]:
    """A metrics, params or tags op as one op per key (others: the op itself), to find
    which key MLflow refuses."""
    kind = op["op"]
    if kind not in _ITEMS or len(op[_ITEMS[kind]]) < 2:
        return [op]
    return [{**op, _ITEMS[kind]: {k: v}} for k, v in op[_ITEMS[kind]].items()]


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class MissingFile(Exception):
    """The file an op uploads is not there."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"missing file {path}")
        self.path = path


_ROTATED = re.compile(r"^step-\d+\.pt$")


def rotated_checkpoint(op: Op) -> bool:
    """An upload of a step checkpoint, which the run folder deletes once two newer ones
    exist."""
    return op["op"] == "artifact" and bool(_ROTATED.match(Path(str(op.get("path"))).name))


def upload_name(op: Op) -> str:
    """Where an artifact op puts its file in the run's artifacts."""
    name = op.get("name") or Path(str(op.get("path"))).name
    return f"{op['dir']}/{name}" if op.get("dir") else name


_IMAGE_NAME = re.compile(r"^(?P<key>.+)\+step\+(?P<step>\d+)\+timestamp\+")


def logged_images(client: MlflowClient, run_id: str) -> set[tuple[str, int]]:
    """(key, step) of the images the run has (MLflow names them
    ``images/KEY+step+STEP+timestamp+TIME+UUID.png``, with / in KEY as ~)."""
    from mlflow.exceptions import MlflowException

    try:
        names = [Path(a.path).name for a in client.list_artifacts(run_id, "images")]
    except (MlflowException, OSError):  # no images yet
        return set()
    found = set()
    for name in names:
        match = _IMAGE_NAME.match(name)
        if match and name.endswith(".png"):
            found.add((match["key"].replace("~", "/"), int(match["step"])))
    return found


class Delivery:
    """Applies groups of ops to ``run_id``; raises what MlflowClient raised.

    ``folder`` is the outbox folder; artifact paths are relative to the run folder above
    it (older journals hold absolute ones: see :meth:`source`)."""

    def __init__(self, client: MlflowClient, run_id: str, folder: Path) -> None:
        self.client, self.run_id, self.folder = client, run_id, folder

    def deliver(self, ops: list[Op], replay: bool = False) -> None:
        kind = ops[0]["op"]
        handler = getattr(self, f"_{kind}", None)
        if handler is None:
            raise ValueError(f"unknown record kind {kind!r}")
        handler(ops, replay)

    def _metrics(self, ops: list[Op], replay: bool) -> None:
        from mlflow.entities import Metric

        items = [
            Metric(key, float(value), op["time"], op["step"])
            for op in ops
            for key, value in op["values"].items()
        ]
        for chunk in _chunks(items, LIMITS["metrics"]):
            self.client.log_batch(self.run_id, metrics=chunk)

    def _params(self, ops: list[Op], replay: bool) -> None:
        from mlflow.entities import Param

        merged = {k: v for op in ops for k, v in op["params"].items()}
        for chunk in _chunks(list(merged.items()), LIMITS["params"]):
            self.client.log_batch(self.run_id, params=[Param(k, v) for k, v in chunk])

    def _tags(self, ops: list[Op], replay: bool) -> None:
        from mlflow.entities import RunTag

        merged = {k: v for op in ops for k, v in op["tags"].items()}
        for chunk in _chunks(list(merged.items()), LIMITS["tags"]):
            self.client.log_batch(self.run_id, tags=[RunTag(k, v) for k, v in chunk])

    def _delete_tag(self, ops: list[Op], replay: bool) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.delete_tag(self.run_id, ops[0]["key"])
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise

    def _header(self, ops: list[Op], replay: bool) -> None:
        """A compacted journal's first line: nothing to deliver."""

    def _image(self, ops: list[Op], replay: bool) -> None:
        from PIL import Image

        op = ops[0]
        path = self.folder / op["file"]
        logged = replay and (op["key"], op["step"]) in logged_images(self.client, self.run_id)
        if not path.exists():
            if logged:
                return  # delivered by the process before, which then removed the file
            raise MissingFile(path)
        if not logged:
            with Image.open(path) as image:
                image.load()
                self.client.log_image(
                    self.run_id, image, key=op["key"], step=op["step"], timestamp=op["time"]
                )
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

    def source(self, op: Op) -> Path:
        """The file an artifact op uploads. Journals hold it relative to the run folder;
        older ones hold an absolute path, which is tried as is and then, if the folder was
        moved, as the same path's tail under the run folder where it is now."""
        path = Path(op["path"])
        root = self.folder.parent
        if not path.is_absolute():
            return root / path
        if path.exists():
            return path
        for start in range(1, len(path.parts)):  # the longest tail that exists here
            moved = root.joinpath(*path.parts[start:])
            if moved.exists():
                return moved
        return path

    def _artifact(self, ops: list[Op], replay: bool) -> None:
        op = ops[0]
        path = self.source(op)
        if not path.exists():
            raise MissingFile(path)
        if path.is_dir():  # an op uploads one file; MLflow would copy a whole tree
            raise IsADirectoryError(errno.EISDIR, "a folder, not a file", str(path))
        name = op.get("name") or path.name
        if name == path.name:
            self.client.log_artifact(self.run_id, str(path), op.get("dir"))
            return
        # Upload under another name (step-N.pt as checkpoints/last.pt) through a hard link.
        staging = self.folder / "staging"
        staging.mkdir(exist_ok=True)
        link = staging / name
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        try:
            os.link(path, link)
        except FileNotFoundError:
            raise MissingFile(path) from None
        try:
            self.client.log_artifact(self.run_id, str(link), op.get("dir"))
        finally:
            with contextlib.suppress(FileNotFoundError):
                link.unlink()

    def _status(self, ops: list[Op], replay: bool) -> None:
        op: dict[str, Any] = ops[0]
        if op["status"] == "RUNNING":
            self.client.update_run(self.run_id, status="RUNNING")
        else:
            self.client.set_terminated(self.run_id, status=op["status"], end_time=op["time"])
