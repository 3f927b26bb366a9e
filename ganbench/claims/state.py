"""A claim's folder (``CACHE/claims/NAME`` or ``--out``) and what it remembers between
runs: the training run's ID once known, whether it finished, and each finished probe's
record. Written whole or not at all (``ganbench.files.sealed``) after every change, so a
claim stopped anywhere, ``kill -9`` included, continues from its last finished step.

One ``ganbench claim run`` at a time holds the folder (``flock`` on ``lock``; the kernel
drops it when the process dies).
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any

from ganbench.errors import UsageError
from ganbench.files.sealed import write_atomic

FORMAT = "ganbench-claim/1"


class ClaimFolder:
    """The folder and its state; :meth:`hold` before writing."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path).expanduser().resolve()
        self.state: dict[str, Any] = self._read() or {"format": FORMAT, "probes": {}}
        self._lock: Any = None

    @property
    def state_path(self) -> Path:
        return self.path / "state.json"

    def _read(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise UsageError(
                f"{self.state_path} cannot be read ({exc}); delete it to start the claim over"
            ) from None
        if data.get("format") != FORMAT:
            raise UsageError(f"{self.state_path} is not a claim's state; use another --out")
        return data

    def hold(self) -> None:
        """Create the folder and hold it for this process, or refuse in one line."""
        self.path.mkdir(parents=True, exist_ok=True)
        fh = (self.path / "lock").open("a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise UsageError(
                f"another `ganbench claim run` is working in {self.path}; wait for it, or"
                " give this one another --out"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        self._lock = fh
        self.state = self._read() or self.state  # as the last holder left it

    def save(self) -> None:
        write_atomic(self.state_path, json.dumps(self.state, indent=1, sort_keys=True) + "\n")

    # ---- the recipe it belongs to -------------------------------------------------------
    def adopt(self, name: str, train_key: str, tracking_uri: str) -> None:
        """Refuse a folder of another claim, another training or another store."""
        s = self.state
        for key, value, what in (
            ("name", name, "claim"),
            ("train_key", train_key, "training recipe ([train] changed)"),
            ("tracking_uri", tracking_uri, "tracking store"),
        ):
            if s.get(key, value) != value:
                raise UsageError(
                    f"{self.path} holds claim {s.get('name')!r} with another {what}"
                    f" ({s[key]} here); give another --out, or delete that folder to start over"
                )
            s[key] = value

    # ---- training -----------------------------------------------------------------------
    @property
    def training(self) -> dict[str, Any]:
        return self.state.setdefault("training", {})

    def set_run(self, run_id: str, run_dir: Path | None, *, given: bool = False) -> None:
        t = self.training
        if t.get("run_id") != run_id:
            t.update(run_id=run_id, given=given, finished=False)
            t["run_dir"] = None if run_dir is None else str(run_dir)
            self.save()

    def finish_training(self) -> None:
        self.training["finished"] = True
        self.save()

    def add_training_time(self, seconds: float) -> None:
        t = self.training
        t["seconds"] = round(t.get("seconds", 0.0) + seconds, 1)
        self.save()

    # ---- probes -------------------------------------------------------------------------
    def probe_done(self, name: str, key: str, run_id: str) -> dict[str, Any] | None:
        done = self.state["probes"].get(name)
        if done and done.get("key") == key and done.get("run_id") == run_id:
            return done
        return None

    def finish_probe(
        self, name: str, key: str, run_id: str, path: str, record: dict, seconds: float
    ) -> None:
        self.state["probes"][name] = {
            "key": key,
            "run_id": run_id,
            "record_path": path,
            "record": record,
            "seconds": round(seconds, 1),
        }
        self.save()
