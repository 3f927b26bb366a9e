"""``python -m benchmarks.team_storage``: the team setup's PostgreSQL against SQLite, with
1, 4 and 16 concurrent worker processes (issue 30).

(a) **Claiming trials.** A study is created with ``--claims`` waiting trials
(``study.enqueue_trial({"i": k})``); each worker process opens the storage as ganbench
does (``ganbench.study.storage.open_storage``: heartbeats on, SQLite's 60 s busy timeout)
and takes its fixed share with ``trial = study.ask()`` (which pops a WAITING trial:
``set_trial_state_values(RUNNING)``) and ``study.tell(trial, 1.0)``. Timed per claim: the
ask alone and ask + tell; the workers' claims per second from the first to the last. The
sampler is Optuna's RandomSampler (no parameter is suggested, so it adds no query).
Checked after: every enqueued trial COMPLETE exactly once, no trial number handed to two
workers, no trial created outside the queue. SQLite is a file in a fresh folder
(``sqlite:////tmp/.../optuna.db``, as ganbench's default); PostgreSQL is the team
server's ``optuna`` database.

(b) **MLflow logging.** Each worker process creates its own run in one experiment
(``MlflowClient(uri).create_run``) and times ``client.log_batch(run_id, metrics=[10
Metric])`` ``--batches`` times: against the team's ``mlflow server`` on PostgreSQL, an
``mlflow server`` on a SQLite file started with the same flags (``--artifacts-destination
DIR --host 127.0.0.1 --port P --workers 2``), and the SQLite file store itself as the
tracking URI (ganbench's embedded default). Checked after: every run's history of every
metric has all its records.

Transient errors (SQLite's "database is locked", an HTTP 5xx) are retried with back-off
as ganbench's writer does (MLflow's own HTTP retries are off, ``fail_fast_http``), and
counted; a timed call includes its retries.

The PostgreSQL side is ``deploy/team/server.sh``, started in a fresh folder under /tmp with
free ports and stopped at the end; ``--team DIR`` uses a running one instead (its
``DIR/env``: the URLs, password included, never on a command line or in the output).

    python -m benchmarks.team_storage --workers 1,4,16 --claims 200 --batches 100 \\
        --json benchmarks/results/team-storage.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SERVER_SCRIPT = ROOT / "deploy" / "team" / "server.sh"
MLFLOW = str(Path(sys.executable).with_name("mlflow"))
METRICS_PER_BATCH = 10
#: Modules the forkserver imports once, so that each worker starts in milliseconds.
PRELOAD = ["optuna", "sqlalchemy", "psycopg", "mlflow", "ganbench.study.storage"]
SETUP_TIMEOUT_S = 240
RUN_TIMEOUT_S = 600


# ---- statistics ------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summary(ms: list[float]) -> dict[str, float]:
    return {
        "p50_ms": percentile(ms, 50),
        "p95_ms": percentile(ms, 95),
        "max_ms": max(ms) if ms else float("nan"),
    }


# ---- retries ---------------------------------------------------------------------------------
def transient(exc: BaseException) -> bool:
    """A busy or away store: MLflow's transient codes, a network error, a locked SQLite
    database, or a SQLAlchemy operational error that Optuna wrapped."""
    from ganbench.tracking.store import is_transient

    seen: BaseException | None = exc
    while seen is not None:
        if is_transient(seen) or "database is locked" in str(seen):
            return True
        if type(seen).__name__ in ("OperationalError", "StorageInternalError"):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class Retries:
    """Calls retried with back-off while the store is busy, each retry counted."""

    def __init__(self) -> None:
        self.count = 0
        self.first: str | None = None

    def __call__(self, call: Callable[[], Any], seconds: float = 120.0) -> Any:
        deadline = time.monotonic() + seconds
        delay = 0.05
        while True:
            try:
                return call()
            except Exception as exc:
                if not transient(exc) or time.monotonic() + delay > deadline:
                    raise
                self.count += 1
                self.first = self.first or _describe(exc)
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200] if text else ''}"


# ---- worker processes ------------------------------------------------------------------------
def claim_worker(index: int, url: str, study_name: str, share: int, queue: Any, go: Any) -> None:
    """Take ``share`` waiting trials of the study, timing each ask and ask + tell."""
    try:
        import warnings

        import optuna

        from ganbench.study.storage import open_storage

        # "Heartbeat of storage is supposed to be used with Study.optimize": ganbench's
        # workers go through optimize(n_trials=1), which is ask and tell around the trial.
        warnings.simplefilter("ignore")
        storage = open_storage(url)
        study = optuna.load_study(
            study_name=study_name,
            storage=storage,
            sampler=optuna.samplers.RandomSampler(seed=index),
        )
        # Count the pops another worker won: ask() walks the waiting trials it read and
        # tries each (a row lock where the database has one) until one is its own.
        lost = [0]
        storage_calls = study._storage  # Optuna's cache in front of the RDB storage
        set_state = storage_calls.set_trial_state_values

        def counted(trial_id: int, state: Any, values: Any = None) -> bool:
            won = set_state(trial_id, state, values)
            if not won and state == optuna.trial.TrialState.RUNNING:
                lost[0] += 1
            return won

        storage_calls.set_trial_state_values = counted
        queue.put(("ready", index, None))
        go.wait()
        retry = Retries()
        ask_ms: list[float] = []
        claim_ms: list[float] = []
        numbers: list[int] = []
        refused: list[str] = []
        start = time.perf_counter()
        for _ in range(share):
            t0 = time.perf_counter()
            trial = retry(study.ask)
            t1 = time.perf_counter()
            try:
                retry(lambda trial=trial: study.tell(trial, 1.0))
            except (optuna.exceptions.UpdateFinishedTrialError, ValueError) as exc:
                # "Cannot tell a COMPLETE trial": another worker was handed the same trial
                # and told it first (the check below counts it)
                if isinstance(exc, ValueError) and "Cannot tell a" not in str(exc):
                    raise
                refused.append(_describe(exc))
            t2 = time.perf_counter()
            ask_ms.append((t1 - t0) * 1000)
            claim_ms.append((t2 - t0) * 1000)
            numbers.append(trial.number)
        end = time.perf_counter()
        queue.put(
            (
                "done",
                index,
                {
                    "start": start,
                    "end": end,
                    "ask_ms": ask_ms,
                    "claim_ms": claim_ms,
                    "numbers": numbers,
                    "retries": retry.count,
                    "first_retry": retry.first,
                    "tell_refused": refused,
                    "lost_pops": lost[0],
                },
            )
        )
    except BaseException as exc:
        queue.put(("error", index, _describe(exc)))


def log_worker(index: int, uri: str, experiment_id: str, batches: int, queue: Any, go: Any) -> None:
    """Create a run and log ``batches`` batches of 10 metrics into it, timing each."""
    try:
        from ganbench.tracking.store import fail_fast_http, open_client, quiet_mlflow

        quiet_mlflow()
        fail_fast_http()  # ganbench's writer retries on its own terms (counted here)
        from mlflow.entities import Metric

        retry = Retries()
        client = open_client(uri)
        run_id = retry(lambda: client.create_run(experiment_id, run_name=f"w{index}")).info.run_id
        queue.put(("ready", index, None))
        go.wait()
        ms: list[float] = []
        start = time.perf_counter()
        for step in range(batches):
            now = int(time.time() * 1000)
            metrics = [
                Metric(f"metric_{k}", float(step * METRICS_PER_BATCH + k), now, step)
                for k in range(METRICS_PER_BATCH)
            ]
            t0 = time.perf_counter()
            retry(lambda metrics=metrics: client.log_batch(run_id, metrics=metrics))
            ms.append((time.perf_counter() - t0) * 1000)
        end = time.perf_counter()
        result = {"start": start, "end": end, "ms": ms, "run_id": run_id}
        queue.put(("done", index, {**result, "retries": retry.count, "first_retry": retry.first}))
    except BaseException as exc:
        queue.put(("error", index, _describe(exc)))


def run_workers(
    target: Callable[..., None], workers: int, args: Callable[[int], tuple]
) -> list[dict[str, Any]]:
    """Start ``workers`` processes, let them set up, release them together, collect what
    each measured. Every process is ended before this returns, also on errors."""
    import multiprocessing
    import queue as queue_module

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    messages = ctx.Queue()
    go = ctx.Event()
    procs = [
        ctx.Process(target=target, args=(i, *args(i), messages, go), daemon=True)
        for i in range(workers)
    ]

    def collect(kind: str, timeout: float) -> dict[int, Any]:
        got: dict[int, Any] = {}
        deadline = time.monotonic() + timeout
        while len(got) < workers:
            try:
                what, index, payload = messages.get(timeout=1.0)
            except queue_module.Empty:
                dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(f"a worker process died (exit {dead[0]})") from None
                if time.monotonic() > deadline:
                    raise RuntimeError(f"workers not {kind} after {timeout:.0f} s") from None
                continue
            if what == "error":
                raise RuntimeError(f"worker {index}: {payload}")
            got[index] = payload
        return got

    try:
        for proc in procs:
            proc.start()
        collect("ready", SETUP_TIMEOUT_S)
        go.set()
        done = collect("done", RUN_TIMEOUT_S)
        for proc in procs:
            proc.join(30)
        return [done[i] for i in range(workers)]
    finally:
        go.set()  # a worker still waiting leaves its wait
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join()
        messages.close()


def shares(total: int, workers: int) -> list[int]:
    return [total // workers + (1 if i < total % workers else 0) for i in range(workers)]


# ---- the two measurements --------------------------------------------------------------------
def measure_claims(label: str, url: str, workers: int, claims: int) -> dict[str, Any]:
    import optuna
    from optuna.trial import TrialState

    from ganbench.study.storage import open_storage

    storage = open_storage(url)
    name = f"bench-claims-{label}-{workers}-{secrets.token_hex(4)}"
    study = optuna.create_study(study_name=name, storage=storage)
    try:
        for k in range(claims):
            study.enqueue_trial({"i": k})
        split = shares(claims, workers)
        results = run_workers(claim_worker, workers, lambda i: (url, name, split[i]))
        numbers = [n for r in results for n in r["numbers"]]
        trials = study.get_trials(deepcopy=False)
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        values = [(t.system_attrs.get("fixed_params") or {}).get("i") for t in complete]
        check = {
            "enqueued": claims,
            "trials": len(trials),
            "complete": len(complete),
            "waiting": sum(t.state == TrialState.WAITING for t in trials),
            "distinct_params_complete": len({v for v in values if v is not None}),
            "not_enqueued": sum(v is None for v in values),
            "numbers_handed_out_twice": len(numbers) - len(set(numbers)),
            "tell_refused": sum(len(r["tell_refused"]) for r in results),
        }
        check["ok"] = (
            check["complete"] == claims
            and check["trials"] == claims
            and check["distinct_params_complete"] == claims
            and set(values) == set(range(claims))
            and check["numbers_handed_out_twice"] == 0
        )
        check["double_claims"] = check["numbers_handed_out_twice"]
        wall = max(r["end"] for r in results) - min(r["start"] for r in results)
        return {
            "storage": label,
            "workers": workers,
            "claims": claims,
            "claims_per_s": claims / wall,
            "wall_s": wall,
            "ask": summary([m for r in results for m in r["ask_ms"]]),
            "ask_tell": summary([m for r in results for m in r["claim_ms"]]),
            "lost_pops_per_claim": sum(r["lost_pops"] for r in results) / claims,
            "retries": sum(r["retries"] for r in results),
            "first_retry": next((r["first_retry"] for r in results if r["first_retry"]), None),
            "tell_refused_first": next(
                (r["tell_refused"][0] for r in results if r["tell_refused"]), None
            ),
            "check": check,
        }
    finally:
        with contextlib.suppress(Exception):
            optuna.delete_study(study_name=name, storage=storage)
        storage.engine.dispose()


def measure_logging(label: str, uri: str, workers: int, batches: int) -> dict[str, Any]:
    from ganbench.tracking.store import experiment_id, fail_fast_http, open_client, quiet_mlflow

    quiet_mlflow()
    fail_fast_http()
    client = open_client(uri)
    exp = experiment_id(client, f"bench-logging-{label}-{workers}-{secrets.token_hex(4)}")
    try:
        results = run_workers(log_worker, workers, lambda i: (uri, exp, batches))
        counted = 0
        short_runs = 0
        for r in results:
            for k in range(METRICS_PER_BATCH):
                history = client.get_metric_history(r["run_id"], f"metric_{k}")
                counted += len(history)
                short_runs += len({m.step for m in history}) != batches
        expected = workers * batches * METRICS_PER_BATCH
        wall = max(r["end"] for r in results) - min(r["start"] for r in results)
        return {
            "store": label,
            "workers": workers,
            "batches_per_worker": batches,
            "records": expected,
            "records_per_s": expected / wall,
            "batches_per_s": workers * batches / wall,
            "wall_s": wall,
            "log_batch": summary([m for r in results for m in r["ms"]]),
            "retries": sum(r["retries"] for r in results),
            "first_retry": next((r["first_retry"] for r in results if r["first_retry"]), None),
            "check": {
                "expected": expected,
                "counted": counted,
                "metrics_missing_steps": short_runs,
                "ok": counted == expected and short_runs == 0,
            },
        }
    finally:
        with contextlib.suppress(Exception):
            client.delete_experiment(exp)


# ---- servers ---------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_env(path: Path) -> dict[str, str]:
    """``export K=V`` lines of a team folder's env file."""
    out = {}
    for line in path.read_text().splitlines():
        if line.startswith("export ") and "=" in line:
            key, value = line.removeprefix("export ").split("=", 1)
            out[key.strip()] = value.strip()
    return out


@contextlib.contextmanager
def team_server(existing: Path | None) -> Iterator[dict[str, str]]:
    """The team's PostgreSQL and MLflow server: ``existing`` (a running team folder) or
    ``deploy/team/server.sh`` in a fresh folder under /tmp (PostgreSQL's own user must be
    able to enter it), stopped and removed after."""
    if existing is not None:
        yield read_env(existing / "env")
        return
    folder = Path(tempfile.mkdtemp(prefix="ganbench-team-bench-", dir="/tmp"))
    env = {
        **os.environ,
        "GANBENCH_PG_PORT": str(free_port()),
        "GANBENCH_MLFLOW_PORT": str(free_port()),
        "GANBENCH_PG_PASSWORD": f"Pw{secrets.token_hex(10)}",
        "GANBENCH_MLFLOW": MLFLOW,
    }

    def script(action: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(SERVER_SCRIPT), action, str(folder)],
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )

    try:
        started = script("start")
        if started.returncode != 0:
            raise RuntimeError(f"deploy/team/server.sh start failed: {started.stderr.strip()}")
        yield read_env(folder / "env")
    finally:
        script("stop")
        shutil.rmtree(folder, ignore_errors=True)


class SqliteMlflowServer:
    """``mlflow server`` on a SQLite file with the team server's flags, in its own
    process group (the server, uvicorn and its workers), all ended by ``stop``."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.log = folder / "mlflow-sqlite-server.log"
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(
                [
                    MLFLOW,
                    "server",
                    "--backend-store-uri",
                    f"sqlite:///{folder / 'mlflow-server.db'}",
                    "--artifacts-destination",
                    str(folder / "server-artifacts"),
                    *("--host", "127.0.0.1", "--port", str(self.port), "--workers", "2"),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{self.uri}/health", timeout=2) as answer,
            ):
                if answer.status == 200:
                    return
            if self.proc.poll() is not None:
                raise RuntimeError(f"the SQLite mlflow server exited; see {self.log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the SQLite mlflow server did not answer; see {self.log}")
            time.sleep(0.25)

    def stop(self) -> None:
        group = self.proc.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(20)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # uvicorn's workers leave after their parent
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
        self.proc.wait()


# ---- report ----------------------------------------------------------------------------------
def cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "cpu"


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("optuna", "mlflow", "sqlalchemy", "psycopg"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    import sqlite3

    out["sqlite"] = sqlite3.sqlite_version
    return out


def postgres_version(url: str) -> str:
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            return str(conn.execute(sqlalchemy.text("show server_version")).scalar())
    finally:
        engine.dispose()


def _cell(value: float) -> str:
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def _status(row: dict[str, Any], what: str) -> str:
    if "error" in row:
        return f"error: {row['error']}"
    check = row["check"]
    if what == "claims":
        text = (
            "ok"
            if check["ok"]
            else (
                f"FAILED: {check['double_claims']} claims of a trial another worker"
                f" had; {check['complete']} of {check['enqueued']} complete"
            )
        )
    else:
        text = "ok" if check["ok"] else f"FAILED: {check['counted']} of {check['expected']}"
    return text + (f", {row['retries']} retries" if row["retries"] else "")


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"{result['machine']}, {result['date']}; load average before"
        f" {result['load_before']}, after {result['load_after']}",
        "",
        f"Trial claims ({result['claims']} enqueued trials per row, shared by the workers):",
        "",
        "| storage | workers | claims/s | ask p50 | ask p95 | ask max"
        " | ask+tell p50 | ask+tell p95 | ask+tell max | pops lost per claim | check |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in result["claim_rows"]:
        if "error" in row:
            lines.append(
                f"| {row['storage']} | {row['workers']} |"
                + " |" * 8
                + f" {_status(row, 'claims')} |"
            )
            continue
        a, c = row["ask"], row["ask_tell"]
        lines.append(
            f"| {row['storage']} | {row['workers']} | {_cell(row['claims_per_s'])}"
            f" | {_cell(a['p50_ms'])} | {_cell(a['p95_ms'])} | {_cell(a['max_ms'])}"
            f" | {_cell(c['p50_ms'])} | {_cell(c['p95_ms'])} | {_cell(c['max_ms'])}"
            f" | {row['lost_pops_per_claim']:.2f} | {_status(row, 'claims')} |"
        )
    lines += [
        "",
        f"MLflow log_batch of {METRICS_PER_BATCH} metrics ({result['batches']} batches per"
        " worker, one run each):",
        "",
        "| tracking store | workers | records/s | p50 | p95 | max | check |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in result["log_rows"]:
        if "error" in row:
            lines.append(
                f"| {row['store']} | {row['workers']} |" + " |" * 4 + f" {_status(row, 'log')} |"
            )
            continue
        b = row["log_batch"]
        lines.append(
            f"| {row['store']} | {row['workers']} | {_cell(row['records_per_s'])}"
            f" | {_cell(b['p50_ms'])} | {_cell(b['p95_ms'])} | {_cell(b['max_ms'])}"
            f" | {_status(row, 'log')} |"
        )
    lines.append("")
    lines.append("(latencies in ms)")
    return "\n".join(lines)


# ---- main ------------------------------------------------------------------------------------
def measure(args: argparse.Namespace) -> dict[str, Any]:
    from ganbench.study.storage import safe_url

    claim_rows: list[dict[str, Any]] = []
    log_rows: list[dict[str, Any]] = []
    load_before = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    began = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="ganbench-team-storage-", dir="/tmp"))
    sqlite_server = None
    pg_version = ""
    try:
        sqlite_server = SqliteMlflowServer(work)  # starts beside PostgreSQL's start
        with team_server(args.team) as team:
            sqlite_server.wait_ready()
            pg_optuna = team["GANBENCH_STUDY_STORAGE"]
            storages = {
                "sqlite": f"sqlite:///{work / 'optuna.db'}",
                "postgresql": pg_optuna,
            }
            stores = {
                "server on postgresql": team["MLFLOW_TRACKING_URI"],
                "server on sqlite": sqlite_server.uri,
            }
            if not args.no_direct:
                stores["sqlite file (no server)"] = f"sqlite:///{work / 'mlflow.db'}"
            pg_version = postgres_version(pg_optuna)
            print(
                f"[team] PostgreSQL {pg_version} at {safe_url(pg_optuna)}; servers up in"
                f" {time.perf_counter() - began:.1f} s",
                file=sys.stderr,
                flush=True,
            )

            def attempt(rows: list, key: str, label: str, workers: int, call: Callable) -> None:
                t0 = time.perf_counter()
                try:
                    row = call()
                except Exception as exc:
                    row = {key: label, "workers": workers, "error": _describe(exc)}
                rows.append(row)
                what = "claims" if key == "storage" else "log"
                print(
                    f"[team] {what} {label}, {workers} workers: {_status(row, what)}"
                    f" ({time.perf_counter() - t0:.1f} s)",
                    file=sys.stderr,
                    flush=True,
                )

            if not args.quick:
                # Not recorded: the forkserver's first start (its imports), each store's
                # first connections, and the servers' own start-up work out of the way.
                for label, url in storages.items():
                    measure_claims(f"warm-{label}", url, 2, 8)
                for label, uri in stores.items():
                    measure_logging(f"warm-{label}", uri, 2, 3)
                print(
                    f"[team] warmed up after {time.perf_counter() - began:.1f} s",
                    file=sys.stderr,
                    flush=True,
                )
            # Both sides of a comparison run back to back, so that the machine's other work
            # weighs on both alike.
            for workers in args.workers:
                for label, url in storages.items():
                    attempt(
                        claim_rows,
                        "storage",
                        label,
                        workers,
                        lambda url=url, label=label, workers=workers: measure_claims(
                            label, url, workers, args.claims
                        ),
                    )
            for workers in args.workers:
                for label, uri in stores.items():
                    attempt(
                        log_rows,
                        "store",
                        label,
                        workers,
                        lambda uri=uri, label=label, workers=workers: measure_logging(
                            label, uri, workers, args.batches
                        ),
                    )
    finally:
        if sqlite_server is not None:
            sqlite_server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{cpu_name()}, {len(os.sched_getaffinity(0))} cores",
        "load_before": load_before,
        "load_after": ", ".join(f"{v:.2f}" for v in os.getloadavg()),
        "versions": {**versions(), "postgresql": pg_version},
        "workers": args.workers,
        "claims": args.claims,
        "batches": args.batches,
        "metrics_per_batch": METRICS_PER_BATCH,
        "claim_rows": claim_rows,
        "log_rows": log_rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.team_storage",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--workers", default="1,4,16", help="worker process counts [1,4,16]")
    parser.add_argument("--claims", type=int, help="enqueued trials per configuration [200]")
    parser.add_argument("--batches", type=int, help="log_batch calls per worker [100]")
    parser.add_argument("--quick", action="store_true", help="tiny counts (the smoke test)")
    parser.add_argument(
        "--team", type=Path, help="a running team server's folder (deploy/team/server.sh start)"
    )
    parser.add_argument(
        "--no-direct", action="store_true", help="skip the SQLite file store without a server"
    )
    parser.add_argument("--json", type=Path, help="write the result as JSON here")
    args = parser.parse_args(argv)
    args.workers = sorted({int(w) for w in args.workers.split(",")})
    if args.claims is None:
        args.claims = 20 if args.quick else 200
    if args.batches is None:
        args.batches = 5 if args.quick else 100
    if args.claims < max(args.workers):
        parser.error("--claims must be at least the largest worker count")
    result = measure(args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    failed = [r for r in result["claim_rows"] + result["log_rows"] if "error" in r]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
