"""What the writer could not deliver, kept in the outbox folder where people and commands
look: ``rejected.jsonl`` (each record set aside, with its journal line and the reason) and
``writer-failed.json`` (the writer itself stopped: why, when, at which line).

``ganbench runs`` counts them and ``ganbench sync`` names them; a record set aside is
never retried by itself (MLflow refused it, or its file is gone), and stays readable here.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ganbench.files.sealed import write_atomic
from ganbench.tracking.outbox.delivery import upload_name
from ganbench.tracking.outbox.journal import DAMAGED, JOURNAL, Op

REJECTED = "rejected.jsonl"
WRITER_FAILED = "writer-failed.json"


def what(op: Op) -> str:
    """A record in a few words: ``param lr=0.2``, ``artifact generator.pt``."""
    try:
        return _what(op)
    except (KeyError, TypeError, AttributeError):  # a malformed record
        return f"a {op.get('op')!s} record"


def _what(op: Op) -> str:
    kind = op.get("op")
    if kind == "metrics":
        keys = ", ".join(op["values"])
        return f"metric{'s' if len(op['values']) > 1 else ''} {keys} at step {op['step']}"
    if kind == "params":
        return ", ".join(f"param {k}={v}" for k, v in op["params"].items())
    if kind == "tags":
        return ", ".join(f"tag {k}" for k in op["tags"])
    if kind == "delete_tag":
        return f"deleting tag {op['key']}"
    if kind == "image":
        return f"image {op['key']} at step {op['step']}"
    if kind == "artifact":
        return f"artifact {upload_name(op)}"
    if kind == "status":
        return f"status {op['status']}"
    return f"a {kind!s} record"


def reject(folder: Path, op: Op, reason: str, line: int | None) -> str:
    """Append ``op`` to the outbox's ``rejected.jsonl``; returns one line that names it."""
    entry: dict[str, Any] = {"reason": reason, "line": line, "time": time.time(), "op": op}
    with (folder / REJECTED).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry) + "\n")
        fh.flush()
    if op.get("op") == DAMAGED:
        return f"{folder / JOURNAL} line {line} is damaged ({op.get('error')}): skipped"
    where = f"{JOURNAL} line {line}" if line else JOURNAL
    return f"{where}: {what(op)}: {reason}"


#: Lines naming the first records set aside, kept for the command's summary.
KEEP_REJECTIONS = 100


class Refusals:
    """The records one writer set aside: counted, the first named, the first said, and
    each (journal line, record) kept once even when two of the writer's threads met it (a
    closing thread replays the group the niced one was refused on)."""

    def __init__(self, folder: Path, say: Callable[[str], None]) -> None:
        self.folder, self.say = folder, say
        self.count = 0
        self.lines: list[str] = []
        self._kept: set[tuple[int, str]] = set()

    def keep(self, op: Op, reason: str, line: int, from_mlflow: bool) -> None:
        seen = (line, json.dumps(op, sort_keys=True, default=str))
        if seen in self._kept:
            return
        self._kept.add(seen)
        if op["op"] == DAMAGED:
            reason = f"damaged line {line} of {self.folder / JOURNAL}: {op['error']}"
        text = reject(self.folder, op, reason, line)
        self.count += 1
        if len(self.lines) < KEEP_REJECTIONS:
            self.lines.append(text)
        if self.count == 1:
            who = "MLflow refused" if from_mlflow else "could not deliver"
            self.say(f"tracking: {who} a record ({text}); kept in {self.folder / REJECTED}")


def rejected_count(folder: Path) -> int:
    """How many records the outbox set aside (0 when none)."""
    try:
        with (folder / REJECTED).open("rb") as fh:
            return sum(1 for line in fh if line.strip())
    except OSError:
        return 0


def write_failure(
    folder: Path, reason: str, line: int, pending: int | None, details: str = ""
) -> Path:
    """Leave ``writer-failed.json``: the writer stopped and cannot go on by itself."""
    path = folder / WRITER_FAILED
    data = {
        "reason": reason,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "line": line,
        "pending": pending,
        "pid": os.getpid(),
        "traceback": details,
    }
    write_atomic(path, json.dumps(data, indent=1) + "\n")
    return path


def read_failure(folder: Path) -> dict[str, Any] | None:
    """What ``writer-failed.json`` says (None when the writer did not stop)."""
    try:
        data = json.loads((folder / WRITER_FAILED).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"reason": "unreadable writer-failed.json", "time": "?", "line": 0}
    return data if isinstance(data, dict) else {"reason": "?", "time": "?", "line": 0}


def clear_failure(folder: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (folder / WRITER_FAILED).unlink()


def failure_line(folder: Path, failure: dict[str, Any]) -> str:
    """One line for a stopped writer."""
    return (
        f"the tracking writer stopped at {failure.get('time', '?')} at {JOURNAL} line"
        f" {failure.get('line', '?')} ({failure.get('reason', '?')}; see"
        f" {folder / WRITER_FAILED})"
    )


def state(folder: Path) -> str:
    """For ``ganbench runs``: ``3 rejected``, ``writer stopped``, both, or ``-``."""
    marks = []
    count = rejected_count(folder)
    if count:
        marks.append(f"{count} rejected")
    if (folder / WRITER_FAILED).exists():
        marks.append("writer stopped")
    return ", ".join(marks) or "-"
