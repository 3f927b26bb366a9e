"""Opening an MLflow store so that many processes can share it, and MLflow stays quiet.

MLflow creates and migrates a SQLite store's schema (alembic) in whichever process opens
it first; processes that open a fresh store at the same moment race in that migration
("table _alembic_tmp_metrics already exists") and can leave it broken. MLflow offers no
lock for this, so :func:`open_client` takes one of ours (a ``flock`` beside the database
file) around the first open. Experiments are created race-free the same way, and a store
that answers "database is locked" is retried rather than failing the run.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from mlflow import MlflowClient

T = TypeVar("T")

#: Errors a store returns while it is busy or away: worth retrying, never the caller's fault.
#: MLflow's client turns an HTTP status without a JSON body into a code: 500 and 502 into
#: INTERNAL_ERROR, 503 TEMPORARILY_UNAVAILABLE, 504 DEADLINE_EXCEEDED, 429
#: RESOURCE_EXHAUSTED (501, NOT_IMPLEMENTED, never changes and is not here). Its SQL
#: store reports "database is locked" (any SQLAlchemy OperationalError) as
#: TEMPORARILY_UNAVAILABLE.
TRANSIENT_CODES = frozenset(
    {
        "TEMPORARILY_UNAVAILABLE",
        "INTERNAL_ERROR",
        "REQUEST_LIMIT_EXCEEDED",
        "RESOURCE_EXHAUSTED",
        "ABORTED",
        "DEADLINE_EXCEEDED",
    }
)
#: errno values of a network that is down or a peer that went away, for raw socket errors
#: that Python does not raise as ConnectionError or TimeoutError.
_NETWORK_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.ETIMEDOUT,
        errno.EHOSTUNREACH,
        errno.EHOSTDOWN,
        errno.ENETUNREACH,
        errno.ENETDOWN,
        errno.ENETRESET,
        errno.EPIPE,
    }
)
#: The tag that makes MLflow 3's UI open an experiment as "Training runs" with metric
#: charts (not its GenAI view).
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def quiet_mlflow() -> None:
    """Keep MLflow's INFO lines, its run URLs on stdout and alembic's migration warnings
    off the user's terminal; ganbench says what matters itself. Environment settings a
    user made win (``setdefault``)."""
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for name in ("mlflow", "alembic"):
        logger = logging.getLogger(name)
        if logger.level < logging.WARNING:
            logger.setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="alembic")


def fail_fast_http() -> None:
    """One try per request, 20 s at most, unless the user set otherwise: by default
    MLflow's client retries each request 7 times with back-off (minutes) before it
    reports an absent server. The outbox writer retries on its own terms, so it needs to
    know at once."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")


def route_mlflow_logs(path: Path) -> None:
    """Send MLflow's, alembic's and urllib3's log records to ``path`` (the run folder's
    log) instead of the terminal: during an outage they would print a traceback and a
    retry warning per request, while ganbench says one line when the server goes away
    and one when it is back."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in ("mlflow", "alembic", "urllib3"):
        logger = logging.getLogger(name)
        for old in logger.handlers:  # an earlier run's file, in the same process
            if isinstance(old, logging.FileHandler):
                old.close()
        logger.handlers = [handler]
        logger.propagate = False
        logger.setLevel(logging.INFO)


def is_transient(exc: BaseException) -> bool:
    """True for a store that is away or busy (retry later), False for a refusal (a changed
    param, an unknown run) or a local fault (an unreadable file, a full disk, a bad image)
    that no retry can fix.

    Not every OSError is the server's absence: requests' and Python's connection errors
    are OSErrors, and so are PermissionError and FileNotFoundError. Only the network's
    classes (and errno values) count; urllib3's, which requests normally wraps, are not
    OSErrors at all."""
    from mlflow.exceptions import MlflowException

    if isinstance(exc, MlflowException):
        return exc.error_code in TRANSIENT_CODES
    return network_error(exc) or database_locked(exc)


def network_error(exc: BaseException) -> bool:
    """A connection that failed, broke or timed out, or an HTTP 5xx/429 from requests."""
    import http.client
    import socket

    import requests
    import urllib3

    if isinstance(exc, requests.exceptions.HTTPError):
        status = exc.response.status_code if exc.response is not None else 0
        return status == 429 or (status >= 500 and status != 501)
    away = (
        requests.exceptions.ConnectionError,  # refused, reset, DNS, proxy, TLS handshake
        requests.exceptions.Timeout,
        requests.exceptions.ChunkedEncodingError,  # the connection broke mid-response
        requests.exceptions.RetryError,  # urllib3's retries ran out on 5xx answers
        urllib3.exceptions.ProtocolError,
        urllib3.exceptions.TimeoutError,  # NewConnectionError and NameResolutionError too
        urllib3.exceptions.MaxRetryError,
        urllib3.exceptions.ProxyError,
        http.client.IncompleteRead,
        ConnectionError,  # Python's: refused, reset, aborted, broken pipe
        TimeoutError,
        socket.gaierror,
    )
    if isinstance(exc, away):
        return True
    return isinstance(exc, OSError) and exc.errno in _NETWORK_ERRNOS


def database_locked(exc: BaseException) -> bool:
    """SQLite's "database is locked" (another process writes the store) from sqlite3 or
    SQLAlchemy, when it reaches us without MLflow's wrapping."""
    import sqlite3

    kinds: tuple[type[BaseException], ...] = (sqlite3.OperationalError,)
    try:
        import sqlalchemy.exc

        kinds += (sqlalchemy.exc.OperationalError,)
    except ImportError:  # pragma: no cover - MLflow's SQL stores need it
        pass
    return isinstance(exc, kinds) and "database is locked" in str(exc)


def retrying(call: Callable[[], T], *, seconds: float = 60.0) -> T:
    """``call()``, retried with back-off while the store is busy or away, for ``seconds``."""
    deadline = time.monotonic() + seconds
    delay = 0.1
    while True:
        try:
            return call()
        except Exception as exc:
            if not is_transient(exc) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 5.0)


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for other stores)."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix) or ":memory:" in uri:
        return None
    return Path(uri.removeprefix(prefix).split("?", 1)[0])


@contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """An exclusive ``flock`` on ``DB.ganbench-lock`` beside a SQLite store (nothing for
    other stores): held while a process creates or migrates the schema."""
    db = sqlite_path(uri)
    if db is None:
        yield
        return
    lock = db.with_name(db.name + ".ganbench-lock")
    with lock.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def open_client(uri: str) -> MlflowClient:
    """An ``MlflowClient`` whose store exists with its schema: a fresh SQLite store is
    created by one process at a time."""
    quiet_mlflow()
    from mlflow import MlflowClient

    with store_lock(uri):
        client = MlflowClient(tracking_uri=uri)
        retrying(lambda: client.search_experiments(max_results=1))  # creates the schema
    return client


def experiment_id(client: MlflowClient, name: str) -> str:
    """The ID of experiment ``name``, created if missing (two processes may both try)."""
    from mlflow.exceptions import MlflowException

    found = retrying(lambda: client.get_experiment_by_name(name))
    if found is not None:
        return found.experiment_id
    try:
        return retrying(lambda: client.create_experiment(name, tags=EXPERIMENT_KIND))
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        return retrying(lambda: client.get_experiment_by_name(name)).experiment_id
