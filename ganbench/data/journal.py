"""What a preparation's partial folder records, and the names of its files.

The on-disk records of ``<cache folder>.partial/`` (ganbench.data.partial says how the
folder is written and read): the plan a folder was started for, one journal line per
decoded chunk, how far compaction got, and what a rerun finds.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

FORMAT = "ganbench-partial/1"
IMAGES = "images.npy"
LABELS_BY_INDEX = "labels-by-index.npy"
JOURNAL = "journal.jsonl"
SKIPPED = "skipped.npy"
COMPACT = "compact.json"
#: Held (flock) by the process that owns the folder.
LOCK = "lock"
#: Files the sealed cache does not keep.
WORK_FILES = (JOURNAL, LABELS_BY_INDEX, SKIPPED, COMPACT)


def partial_folder(folder: Path) -> Path:
    """Where the cache ``folder`` is built: beside it, at a name a rerun finds again."""
    return folder.with_name(folder.name + ".partial")


@dataclass(frozen=True)
class Plan:
    """What is prepared. A partial folder made for any other plan is started over."""

    fingerprint: str
    #: N x C x R x R.
    shape: tuple[int, int, int, int]
    #: Images per chunk: the unit of work and of resuming.
    chunk: int

    @property
    def count(self) -> int:
        return self.shape[0]

    @property
    def chunks(self) -> int:
        return -(-self.count // self.chunk)

    def bounds(self, chunk: int) -> tuple[int, int]:
        start = chunk * self.chunk
        return start, min(start + self.chunk, self.count)

    def header(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "fingerprint": self.fingerprint,
            "shape": list(self.shape),
            "chunk": self.chunk,
        }


@dataclass
class ChunkRecord:
    """One decoded chunk, as journaled: its failures in source order, and whether any of
    its images had a label."""

    chunk: int
    bad: list[tuple[int, str, str]] = field(default_factory=list)
    labeled: bool = False

    def line(self) -> bytes:
        record = {"chunk": self.chunk, "bad": [list(b) for b in self.bad], "labeled": self.labeled}
        return json.dumps(record).encode() + b"\n"

    @classmethod
    def parse(cls, text: bytes, plan: Plan) -> ChunkRecord | None:
        """The record on a journal line, or None when the line is not a valid one."""
        try:
            obj = json.loads(text)
            chunk, bad, labeled = obj["chunk"], obj["bad"], obj["labeled"]
        except (ValueError, TypeError, KeyError):
            return None
        if type(chunk) is not int or not 0 <= chunk < plan.chunks or type(labeled) is not bool:
            return None
        if not isinstance(bad, list):
            return None
        start, stop = plan.bounds(chunk)
        entries: list[tuple[int, str, str]] = []
        for entry in bad:
            if not (isinstance(entry, list) and len(entry) == 3):
                return None
            index, where, reason = entry
            previous = entries[-1][0] if entries else start - 1
            if type(index) is not int or not previous < index < stop:
                return None
            if not (isinstance(where, str) and isinstance(reason, str)):
                return None
            entries.append((index, where, reason))
        return cls(chunk, entries, labeled)


@dataclass
class Compaction:
    """How far compaction got: source rows before ``next`` are moved, to rows before
    ``count``; ``block`` rows are moved between two records."""

    next: int
    count: int
    block: int
    has_labels: bool


@dataclass
class Resumed:
    """What a partial folder holds for a plan."""

    phase: Literal["decoding", "compacting"]
    #: The plan, with the chunk size the folder was started with (a rerun may pass another).
    plan: Plan
    records: dict[int, ChunkRecord] = field(default_factory=dict)
    compaction: Compaction | None = None
    #: The journal had lines past a torn or unreadable one (ignored, and rewritten).
    dropped: bool = False


def same_work(header: Any, plan: Plan) -> Plan | None:
    """``plan`` with the chunk size of ``header`` if that describes the same work (files,
    shape and format), else None."""
    if not isinstance(header, dict):
        return None
    expected = plan.header()
    if any(header.get(k) != expected[k] for k in ("format", "fingerprint", "shape")):
        return None
    chunk = header.get("chunk")
    if type(chunk) is not int or chunk < 1:
        return None
    return dataclasses.replace(plan, chunk=chunk)
