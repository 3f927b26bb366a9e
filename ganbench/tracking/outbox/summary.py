"""What the folded-away prefix of a compacted journal said, in a few lines.

Compaction (:meth:`ganbench.tracking.outbox.journal.Journal.compact`) drops the records MLflow
already has, so that a long run's journal stays small. Readers of the run's history still
need some of them: the last status (is the run finished?), the (metric, step) and (image,
step) pairs a resume must not log again, the params, the last checkpoint upload. This
summary keeps the last of each, keyed by name, so its size depends on how many names a
run logs, never on how many steps it trained; :func:`as_ops` gives them back as ops,
marked ``"folded": true``, ahead of the journal's own lines.

Folding is idempotent (the last value per name), so a crash between writing the summary
and rewriting the journal, which folds the same records again next time, changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ganbench.files.sealed import write_atomic

Op = dict[str, Any]
SUMMARY = "summary.json"
FORMAT = "ganbench-outbox-summary/1"


def empty() -> dict[str, Any]:
    return {
        "format": FORMAT,
        "ops": 0,
        "params": {},
        "tags": {},
        "metrics": {},
        "images": {},
        "artifacts": {},
        "status": None,
    }


def load(folder: Path) -> dict[str, Any]:
    """The outbox folder's summary (an empty one when the journal was never compacted)."""
    try:
        data = json.loads((folder / SUMMARY).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return empty()
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return empty()
    return {**empty(), **data}


def save(folder: Path, summary: dict[str, Any]) -> None:
    write_atomic(folder / SUMMARY, json.dumps(summary, separators=(",", ":")) + "\n")


def fold(summary: dict[str, Any], ops: Iterable[Op]) -> dict[str, Any]:
    """``summary`` with ``ops`` (in journal order) folded in: the last value per name."""
    out = json.loads(json.dumps(summary))  # a deep copy
    for op in ops:
        try:
            _fold_one(out, op)
        except (KeyError, TypeError, AttributeError, ValueError):
            continue  # a malformed record, set aside when it was delivered
    return out


def _fold_one(out: dict[str, Any], op: Op) -> None:
    """Fold one record into ``out`` (in place)."""
    kind = op.get("op")
    if kind == "params":
        for k, v in op["params"].items():
            out["params"].setdefault(k, v)  # MLflow keeps a param's first value
    elif kind == "tags":
        out["tags"].update(op["tags"])
    elif kind == "delete_tag":
        out["tags"].pop(op["key"], None)
    elif kind == "metrics":
        for k, v in op["values"].items():
            out["metrics"][k] = [op["step"], op.get("time", 0), v]
    elif kind == "image":
        out["images"][op["key"]] = [op["step"], op.get("time", 0)]
    elif kind == "artifact":
        out["artifacts"][f"{op.get('dir') or ''}/{op.get('name') or ''}"] = op
    elif kind == "status":
        out["status"] = op
    else:
        return  # a header or a damaged line: nothing a reader needs
    out["ops"] += 1


def as_ops(summary: dict[str, Any]) -> list[Op]:
    """The summary as ops, in an order that keeps "the last one wins" readers right: the
    status last."""
    folded: list[Op] = []
    if summary["params"]:
        folded.append({"op": "params", "params": summary["params"]})
    if summary["tags"]:
        folded.append({"op": "tags", "tags": summary["tags"]})
    by_step: dict[tuple[int, int], dict[str, float]] = {}
    for key, (step, when, value) in summary["metrics"].items():
        by_step.setdefault((step, when), {})[key] = value
    for (step, when), values in sorted(by_step.items()):
        folded.append({"op": "metrics", "step": step, "time": when, "values": values})
    for key, (step, when) in summary["images"].items():
        folded.append({"op": "image", "key": key, "step": step, "time": when})
    folded.extend(summary["artifacts"].values())
    if summary["status"]:
        folded.append(summary["status"])
    return [{**op, "folded": True} for op in folded]
