"""The study's Optuna storage: where trials are recorded and claimed.

Optuna is the engine (trial records, atomic hand-out of waiting trials, heartbeats of
running ones, grid and TPE/random sampling); this module opens its storage, checks that a
stored study is the same study, and reads the state of each point of the grid from the
trials. The embedded default is a SQLite file in the cache; any SQLAlchemy URL (PostgreSQL,
MySQL) lets workers on several machines share one study.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ganbench.errors import UsageError

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

#: Environment variable naming the storage for every ``ganbench study`` command.
STORAGE_ENV = "GANBENCH_STUDY_STORAGE"
#: Seconds between a running trial's heartbeats, and after which a silent one is stale
#: (its worker died on another machine; same-host deaths are seen at once by pid). A team
#: sets them for its network with the environment variables below (every worker alike).
HEARTBEAT_SECONDS = 30
GRACE_SECONDS = 180
HEARTBEAT_ENV = "GANBENCH_STUDY_HEARTBEAT_SECONDS"
GRACE_ENV = "GANBENCH_STUDY_GRACE_SECONDS"


def heartbeat_settings() -> tuple[int, int]:
    """(heartbeat interval, grace period) in seconds: the defaults or the environment's."""
    values = []
    for name, default in ((HEARTBEAT_ENV, HEARTBEAT_SECONDS), (GRACE_ENV, GRACE_SECONDS)):
        text = os.environ.get(name, "")
        try:
            value = int(text) if text else default
        except ValueError:
            value = 0
        if value < 1:
            raise UsageError(f"{name}={text!r} is not a whole number of seconds (at least 1)")
        values.append(value)
    heartbeat, grace = values
    if grace <= heartbeat:
        raise UsageError(
            f"{GRACE_ENV} ({grace}) must be longer than {HEARTBEAT_ENV} ({heartbeat}): a live"
            " worker's trial would be failed between two heartbeats"
        )
    return heartbeat, grace


def default_storage(cache: Path) -> str:
    return f"sqlite:///{cache / 'studies' / 'optuna.db'}"


def resolve_storage(url: str | None, cache: Path) -> str:
    url = url or os.environ.get(STORAGE_ENV) or default_storage(cache)
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///")).expanduser().resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{path}"
    return url


def safe_url(url: str) -> str:
    """The URL without a password, for logs and MLflow params."""
    from ganbench.files.redact import safe_uri

    return safe_uri(url)


def open_storage(url: str) -> optuna.storages.RDBStorage:
    import warnings

    import optuna

    # Optuna logs each failed trial with its traceback; ganbench says each outcome in a line.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    # Heartbeats are "experimental" in Optuna 4-5 but are its documented way to fail the
    # trials of dead workers; the warning would be noise on every command.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    from ganbench.tracking.store import store_lock

    heartbeat, grace = heartbeat_settings()
    try:
        # Optuna creates its schema without a lock: two workers opening a fresh SQLite
        # file together fail with "table ... already exists". One at a time, as MLflow's.
        with store_lock(url):
            storage = optuna.storages.RDBStorage(
                url,
                heartbeat_interval=heartbeat,
                grace_period=grace,
                engine_kwargs=(
                    {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
                ),
            )
        if url.startswith("sqlite"):
            _write_locked_transactions(storage.engine)
        return storage
    except Exception as exc:
        raise UsageError(
            f"cannot open the study storage {safe_url(url)} ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0]}); check --storage"
        ) from None


def _write_locked_transactions(engine: Any) -> None:
    """Every SQLite transaction of the study storage takes the database's write lock when
    it begins (``BEGIN IMMEDIATE``), so that two workers cannot both claim one trial.

    Optuna claims a waiting trial by reading it with ``SELECT ... FOR UPDATE`` and setting
    it RUNNING if it still waits. PostgreSQL and MySQL lock the row; SQLite ignores FOR
    UPDATE, and in its default deferred transactions two processes both read WAITING and
    both set RUNNING (optuna/optuna#4002): benchmarks/team_storage.py measured 22 of 200
    trials claimed twice with 4 worker processes, 0 with this. An immediate transaction
    makes the read and the write one step; the busy timeout (60 s) queues the others. This is
    SQLAlchemy's documented recipe for pysqlite's transactions (its "Serializable
    isolation / Savepoints / Transactional DDL" section)."""
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _no_pysqlite_begin(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN, not pysqlite

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections made before the hooks (schema checks) are not reused


def trial_params_key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=str)


@dataclass
class PointState:
    """Every trial of one point (one set of params) and what they add up to."""

    params: dict[str, Any]
    trials: list[FrozenTrial] = field(default_factory=list)

    def _with(self, *states: Any) -> list[FrozenTrial]:
        return [t for t in self.trials if t.state in states]

    @property
    def result(self) -> FrozenTrial | None:
        """The trial that finished this point (the first, should two ever have)."""
        from optuna.trial import TrialState

        done = self._with(TrialState.COMPLETE)
        return min(done, key=lambda t: t.number) if done else None

    @property
    def status(self) -> str:
        """done | diverged | running | waiting | failed | pending."""
        from optuna.trial import TrialState

        result = self.result
        if result is not None:
            return "diverged" if result.user_attrs.get("outcome") == "diverged" else "done"
        if self._with(TrialState.RUNNING):
            return "running"
        if self._with(TrialState.WAITING):
            return "waiting"
        if self._with(TrialState.FAIL):
            return "failed"
        return "pending"

    @property
    def last_run(self) -> FrozenTrial | None:
        """The newest trial that started an MLflow run (to resume it)."""
        started = [t for t in self.trials if t.user_attrs.get("run_id")]
        return max(started, key=lambda t: t.number) if started else None


def point_states(
    trials: Iterable[FrozenTrial], grid: list[dict[str, Any]] | None = None
) -> dict[str, PointState]:
    """Trials grouped by their params (duplicates set aside), grid points first."""
    from optuna.trial import TrialState

    states: dict[str, PointState] = {}
    for params in grid or []:
        states[trial_params_key(params)] = PointState(dict(params))
    for trial in trials:
        if trial.state == TrialState.PRUNED:  # duplicates, set aside by the guard
            continue
        # A waiting (or just popped) trial has its params only as the enqueued fixed ones.
        params = trial.params or trial.system_attrs.get("fixed_params") or {}
        if not params:  # a trial between its start and its first suggestion
            continue
        key = trial_params_key(params)
        states.setdefault(key, PointState(dict(params))).trials.append(trial)
    return states


def counts(states: dict[str, PointState]) -> dict[str, int]:
    out = dict.fromkeys(("done", "diverged", "running", "waiting", "failed", "pending"), 0)
    for state in states.values():
        out[state.status] += 1
    return out
