"""What ``ganbench runs`` says of a run: alive or dead, where it stands, how to go on.

MLflow's status is what the run's process last said. A process killed with ``kill -9``
(or a lost node) said nothing, so its run stays RUNNING; the run folder's lock tells the
truth on this machine, and the heartbeat tag's age is the best guess for other machines.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ganbench.data.paths import cache_root
from ganbench.errors import UsageError
from ganbench.files.redact import safe_uri
from ganbench.runs.resume import STALE_SECONDS, find_local, heartbeat_age, journaled_status
from ganbench.tracking.outbox import problems
from ganbench.tracking.outbox.journal import pending_in
from ganbench.tracking.store import open_client, retrying
from ganbench.tracking.tracker import check_reachable, resolve_tracking_uri

if TYPE_CHECKING:
    from mlflow.entities import Run


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


@dataclass
class RunRow:
    run_id: str
    name: str
    status: str
    step: int | None
    heartbeat: float | None
    #: "alive (pid N)", "dead", "dead?" (no local folder, stale heartbeat), "-" (ended)
    process: str
    resume: str
    #: What the run folder's outbox holds: "12 wait", "3 rejected", "writer stopped", "-"
    tracking: str = "-"

    @property
    def dead(self) -> bool:
        return self.process.startswith("dead")

    def cells(self) -> tuple[str, ...]:
        step = "-" if self.step is None else str(self.step)
        return (
            self.run_id,
            self.name,
            self.status,
            step,
            _age(self.heartbeat),
            self.process,
            self.tracking,
            self.resume,
        )


def _tag_step(run: Run) -> int | None:
    tag = run.data.tags.get("ganbench.heartbeat", "")
    parts = tag.split()
    if "step" in parts and parts.index("step") + 1 < len(parts):
        try:
            return int(parts[parts.index("step") + 1])
        except ValueError:
            return None
    return None


def describe(run: Run, cache: Path) -> RunRow:
    status = run.info.status
    folder = find_local(run, cache)
    if folder is not None:
        beat = folder.heartbeat()
        alive = folder.held_elsewhere()
        step = beat.step if beat else None
        age = beat.age() if beat else None
        checkpoints = folder.checkpoints()
        resumable = checkpoints[0][0] if checkpoints else None
        waiting = pending_in(folder.path / "outbox")
        ref = str(folder.path)
        process = f"alive (pid {beat.pid})" if alive and beat else ("alive" if alive else "dead")
        tracking = _tracking(folder.path / "outbox", waiting if not alive else 0)
    else:
        age, step, waiting = heartbeat_age(run), _tag_step(run), 0
        tracking = "-"
        last = run.data.tags.get("checkpoint.last_step")
        resumable = int(last) if last and last.isdigit() else None
        ref = run.info.run_id
        fresh = age is not None and age < STALE_SECONDS
        process = "alive? (elsewhere)" if fresh else "dead?"
    if status != "RUNNING":
        process = "-"
    finished = status == "FINISHED" or (
        folder is not None and journaled_status(folder) == "FINISHED"
    )
    if process.startswith("alive"):
        resume = "-"
    elif finished:
        resume = f"ganbench sync {ref} ({waiting} records wait)" if waiting else "-"
    elif resumable is not None:
        resume = f"from step {resumable}: ganbench resume {ref}"
    else:
        resume = "no checkpoint"
    name = run.info.run_name or ""
    return RunRow(run.info.run_id, name, status, step, age, process, resume, tracking)


def _tracking(outbox: Path, waiting: int) -> str:
    """Records waiting (of a run no process delivers now), set aside, a stopped writer."""
    marks = [f"{waiting} wait"] if waiting else []
    state = problems.state(outbox)
    if state != "-":
        marks.append(state)
    return ", ".join(marks) or "-"


def list_runs(
    experiment: str, tracking_uri: str | None, cache_dir: str | None, limit: int
) -> list[RunRow]:
    """The ``limit`` newest runs of ``experiment``, described (``ganbench runs``)."""
    uri = resolve_tracking_uri(tracking_uri)
    check_reachable(uri)
    client = open_client(uri)
    found = retrying(lambda: client.get_experiment_by_name(experiment))
    if found is None:
        names = [e.name for e in client.search_experiments()]
        raise UsageError(
            f"no experiment {experiment!r} in {safe_uri(uri)}; pick one with --experiment:"
            f" {', '.join(names) or 'none'}"
        )
    listed = retrying(
        lambda: client.search_runs(
            [found.experiment_id], order_by=["attributes.start_time DESC"], max_results=limit
        )
    )
    cache = cache_root(cache_dir)
    return [describe(run, cache) for run in listed]
