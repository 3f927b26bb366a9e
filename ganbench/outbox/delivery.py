"""Turning journal ops into MlflowClient calls for one run.

Consecutive metrics, params and tags go as one ``log_batch`` each (within MLflow's
per-request limits), so a backlog after an outage drains in few requests. Delivering an
op twice is harmless: MLflow's SQL store drops a metric row identical to one it has (the
timestamp is the journal's, not the delivery's), params and tags are set to the same
values, artifacts overwrite themselves; images, which MLflow names with a random UUID,
are looked up before they are logged again.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ganbench.outbox.journal import Op

if TYPE_CHECKING:
    from mlflow import MlflowClient

#: MLflow's limits per log_batch request.
LIMITS = {"metrics": 1000, "params": 100, "tags": 100}
#: Where each batchable op keeps its items.
_ITEMS = {"metrics": "values", "params": "params", "tags": "tags"}


def _size(op: Op) -> int:
    return len(op[_ITEMS[op["op"]]])


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
        ):
            yield group
            group = []
        group.append(item)
        if not mergeable:
            yield group
            group = []
    if group:
        yield group


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
    """Applies groups of ops to ``run_id``; raises what MlflowClient raised."""

    def __init__(self, client: MlflowClient, run_id: str, folder: Path) -> None:
        self.client, self.run_id, self.folder = client, run_id, folder

    def deliver(self, ops: list[Op], replay: bool = False) -> None:
        kind = ops[0]["op"]
        getattr(self, f"_{kind}")(ops, replay)

    def _metrics(self, ops: list[Op], replay: bool) -> None:
        from mlflow.entities import Metric

        items = [
            Metric(key, float(value), op["time"], op["step"])
            for op in ops
            for key, value in op["values"].items()
        ]
        self.client.log_batch(self.run_id, metrics=items)

    def _params(self, ops: list[Op], replay: bool) -> None:
        from mlflow.entities import Param

        merged = {k: v for op in ops for k, v in op["params"].items()}
        self.client.log_batch(self.run_id, params=[Param(k, v) for k, v in merged.items()])

    def _tags(self, ops: list[Op], replay: bool) -> None:
        from mlflow.entities import RunTag

        merged = {k: v for op in ops for k, v in op["tags"].items()}
        self.client.log_batch(self.run_id, tags=[RunTag(k, v) for k, v in merged.items()])

    def _delete_tag(self, ops: list[Op], replay: bool) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.delete_tag(self.run_id, ops[0]["key"])
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise

    def _image(self, ops: list[Op], replay: bool) -> None:
        from PIL import Image

        op = ops[0]
        path = self.folder / op["file"]
        if path.exists() and not (
            replay and (op["key"], op["step"]) in logged_images(self.client, self.run_id)
        ):
            with Image.open(path) as image:
                image.load()
                self.client.log_image(
                    self.run_id, image, key=op["key"], step=op["step"], timestamp=op["time"]
                )
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

    def _artifact(self, ops: list[Op], replay: bool) -> None:
        op = ops[0]
        path = Path(op["path"])
        if not path.exists():
            return  # a rotated checkpoint: a newer one is further down the journal
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
            return
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
