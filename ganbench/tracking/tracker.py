"""Where a run's params, metrics, images and artifacts go: MLflow, or nowhere.

``MlflowTracker`` talks to any MLflow store through ``MlflowClient`` (no fluent-API global
run state), synchronously: it creates training runs and finds existing ones. Training
runs and the short commands that log into a run (eval, probe, analyze, report) log
through :class:`ganbench.tracking.outbox.tracker.OutboxTracker`, which journals every record on
disk and delivers it in the background, so an outage of the store never stalls or kills
the training, nor loses a command's results (:mod:`ganbench.tracking.outbox.command`).
``NullTracker`` keeps the runner free of MLflow for benchmarks and for the GPU machines,
which do not have it installed.
"""

from __future__ import annotations

import os
import time
import urllib.error
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ganbench.errors import TrackingError, UsageError
from ganbench.files.redact import safe_uri

if TYPE_CHECKING:
    from PIL.Image import Image

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_EXPERIMENT = "ganbench"


class Tracker(Protocol):
    """What the runner logs through."""

    run_id: str

    def log_params(self, params: Mapping[str, Any]) -> None: ...
    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None: ...
    def log_image(self, image: Image, key: str, step: int) -> None: ...
    def log_artifact(
        self, path: Path, artifact_path: str | None = None, name: str | None = None
    ) -> None: ...
    def set_tags(self, tags: Mapping[str, str]) -> None: ...
    def delete_tag(self, key: str) -> None: ...
    def finish(self, status: str) -> None: ...
    def flush(self) -> None:
        """Make what was logged so far durable (called before each checkpoint)."""

    def describe(self) -> str: ...


def resolve_tracking_uri(uri: str | None) -> str:
    """``--tracking-uri``, else ``MLFLOW_TRACKING_URI``, else the embedded SQLite store.

    A relative SQLite path is made absolute: MLflow caches its store per URI string, so a
    relative one would keep pointing at the folder of the first use in a process.
    """
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/") and ":memory:" not in uri:
        uri = prefix + str(Path(uri.removeprefix(prefix)).resolve())
    return uri


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Fail fast and clearly on a tracking server that does not answer.

    MLflow's own client retries an unreachable server with back-off for minutes before it
    gives up; a user who mistyped a port should know in seconds.
    """
    if uri.startswith(("http://", "https://")):
        from ganbench.files.urls import open_url  # an https store never answers over http

        url = uri.rstrip("/") + "/health"
        try:
            with open_url(url, timeout=timeout) as response:
                if response.status != 200:
                    raise OSError(f"HTTP {response.status}")
        except (OSError, urllib.error.URLError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TrackingError(
                f"cannot reach the MLflow tracking server at {safe_uri(uri)} ({reason}). Start it"
                f" (mlflow server --backend-store-uri sqlite:///mlflow.db --port PORT) or use"
                f" the embedded store: --tracking-uri {DEFAULT_TRACKING_URI}"
            ) from None
    elif uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///"))
        folder = path.parent if str(path.parent) else Path(".")
        if not folder.is_dir():
            raise TrackingError(
                f"the folder of the SQLite tracking store {safe_uri(uri)} does not exist;"
                f" create {folder} or pick another --tracking-uri"
            )


class MlflowTracker:
    """One MLflow run, created on start and ended with a status by :meth:`finish`."""

    def __init__(
        self,
        tracking_uri: str,
        experiment: str = DEFAULT_EXPERIMENT,
        run_name: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        check_reachable(tracking_uri)
        from ganbench.tracking.store import experiment_id as get_experiment
        from ganbench.tracking.store import open_client, retrying

        self.tracking_uri = tracking_uri
        try:
            self.client = open_client(tracking_uri)
            experiment_id = get_experiment(self.client, experiment)
            run = retrying(
                lambda: self.client.create_run(
                    experiment_id, run_name=run_name, tags=dict(tags or {})
                )
            )
        except Exception as exc:
            raise TrackingError(
                f"cannot start an MLflow run in {safe_uri(tracking_uri)} ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}); check --tracking-uri"
            ) from exc
        self.experiment_id = experiment_id
        self.run_id = run.info.run_id
        self.run_name = run.info.run_name
        self.artifact_uri = run.info.artifact_uri
        self._finished = False

    @classmethod
    def existing(cls, tracking_uri: str, run_id: str) -> MlflowTracker:
        """The run ``run_id`` (finished or not), to add scores to it after training."""
        check_reachable(tracking_uri)
        from mlflow.exceptions import MlflowException

        from ganbench.tracking.store import is_transient, open_client, retrying

        self = cls.__new__(cls)
        self.tracking_uri = tracking_uri
        self.client = open_client(tracking_uri)
        try:
            # A server that answered the health check a moment ago gets seconds; a SQLite
            # file that other runs hold locked gets the usual minute.
            remote = tracking_uri.startswith(("http://", "https://"))
            run = retrying(lambda: self.client.get_run(run_id), seconds=10 if remote else 60)
        except Exception as exc:
            if isinstance(exc, MlflowException) and not is_transient(exc):
                raise UsageError(
                    f"no run {run_id!r} in the MLflow store {safe_uri(tracking_uri)}; copy the"
                    " ID from"
                    " the MLflow UI, and pass the store the run is in with --tracking-uri"
                ) from None
            if not is_transient(exc):
                raise
            raise TrackingError(
                f"the MLflow store at {safe_uri(tracking_uri)} did not answer for run {run_id}"
                f" ({_first_line(exc)}); try again once it answers"
            ) from None
        self.experiment_id = run.info.experiment_id
        self.run_id, self.run_name = run.info.run_id, run.info.run_name
        self.artifact_uri = run.info.artifact_uri
        self.run = run
        self._finished = True  # its status is the training's; scoring does not change it
        return self

    @classmethod
    def detached(
        cls, tracking_uri: str, run_id: str, experiment_id: str | None = None
    ) -> MlflowTracker:
        """The run ``run_id`` without a word to the store: for a short command that
        journals its records (:mod:`ganbench.tracking.outbox.command`) while the store may be away.
        Nothing is checked here; the outbox's writer finds out when it delivers."""
        from mlflow import MlflowClient

        from ganbench.tracking.store import open_client, quiet_mlflow

        self = cls.__new__(cls)
        self.tracking_uri = tracking_uri
        if tracking_uri.startswith(("http://", "https://")):
            quiet_mlflow()
            self.client = MlflowClient(tracking_uri=tracking_uri)  # sends no request
        else:
            self.client = open_client(tracking_uri)  # a local store: created if new
        self.experiment_id = experiment_id
        self.run_id, self.run_name = run_id, run_id[:8]
        self.artifact_uri = None
        self._finished = True  # a short command never changes the run's status
        return self

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)) for k, v in params.items()]
        for start in range(0, len(items), 100):  # MLflow's per-request limit on params
            self.client.log_batch(self.run_id, params=items[start : start + 100])

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        self.client.log_batch(self.run_id, metrics=items)

    def log_image(self, image: Image, key: str, step: int) -> None:
        self.client.log_image(self.run_id, image, key=key, step=step)

    def log_artifact(
        self, path: Path, artifact_path: str | None = None, name: str | None = None
    ) -> None:
        if name and name != Path(path).name:
            raise ValueError("MlflowTracker uploads files under their own names")
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def delete_tag(self, key: str) -> None:
        self.client.delete_tag(self.run_id, key)

    def flush(self) -> None:
        pass  # every call above has reached the store when it returns

    def finish(self, status: str) -> None:
        """End the run as FINISHED, FAILED or KILLED (never leave it RUNNING)."""
        if not self._finished:
            self._finished = True
            self.client.set_terminated(self.run_id, status=status)

    def describe(self) -> str:
        return f"MLflow run {self.run_id} ({self.run_name}) in {safe_uri(self.tracking_uri)}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


class NullTracker:
    """Logs nothing; keeps the last values so that callers and tests can look at them."""

    def __init__(self) -> None:
        self.run_id = "none"
        self.params: dict[str, Any] = {}
        self.metrics: dict[str, list[tuple[int, float]]] = {}
        self.tags: dict[str, str] = {}
        self.status: str | None = None

    def log_params(self, params: Mapping[str, Any]) -> None:
        self.params.update(params)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        for k, v in metrics.items():
            self.metrics.setdefault(k, []).append((step, float(v)))

    def log_image(self, image: Image, key: str, step: int) -> None:
        pass

    def log_artifact(
        self, path: Path, artifact_path: str | None = None, name: str | None = None
    ) -> None:
        pass

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self.tags.update(tags)

    def delete_tag(self, key: str) -> None:
        self.tags.pop(key, None)

    def flush(self) -> None:
        pass

    def finish(self, status: str) -> None:
        self.status = status

    def describe(self) -> str:
        return "no tracking"
