"""Zoo generators in an MLflow Model Registry: publish with aliases, pull by ``models:/``.

A generator is logged with MLflow's ONNX flavor (so the MLflow UI shows it with its
signature and ``mlflow.pyfunc`` can load it) and registered under the zoo name; versions
are addressed by aliases (``models:/NAME@champion``), not by the deprecated stages. The
sha256 of the registered ``model.onnx`` is kept as a version tag, so a pull from the
registry is verified the same way as a pull from an index.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ganbench.data.download import file_digest
from ganbench.errors import DownloadError, TrackingError, UsageError, ZooError
from ganbench.files.redact import safe_uri
from ganbench.tracking.tracker import check_reachable, resolve_tracking_uri
from ganbench.zoo.index import printable
from ganbench.zoo.metadata import GeneratorInfo

SHA_TAG = "ganbench.sha256"
_URI = re.compile(r"models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>[0-9]+))")


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str
    aliases: tuple[str, ...]
    sha256: str
    size: int
    run_id: str

    @property
    def uri(self) -> str:
        alias = self.aliases[0] if self.aliases else None
        return f"models:/{self.name}@{alias}" if alias else f"models:/{self.name}/{self.version}"


def registry_uri(flag: str | None) -> str:
    """``--registry URI``, else ``$MLFLOW_REGISTRY_URI``, else the tracking store."""
    return resolve_tracking_uri(flag or os.environ.get("MLFLOW_REGISTRY_URI"))


def parse_models_uri(uri: str) -> tuple[str, str | None, str | None]:
    """``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` -> (name, alias, version)."""
    match = _URI.fullmatch(uri)
    if not match or match["name"] in (".", "..") or "\\" in match["name"]:  # a folder name
        raise UsageError(
            f"{uri!r} is not a registry model URI; use models:/NAME@ALIAS or models:/NAME/VERSION"
        )
    return match["name"], match["alias"], match["version"]


def _client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def lookup(uri: str, registry: str) -> tuple[str, str]:
    """The version a ``models:/`` URI points at now, and the sha256 published with it.

    Both come from a server that may be anyone's and become a cache path and a checksum,
    so the version must be the integer asked for (or any, for an alias) and the sha256 64
    hex digits."""
    from mlflow.exceptions import MlflowException

    name, alias, version = parse_models_uri(uri)
    check_reachable(registry)
    client = _client(registry)
    try:
        mv = (
            client.get_model_version_by_alias(name, alias)
            if alias
            else client.get_model_version(name, version)
        )
    except MlflowException as exc:
        first = printable((exc.message.splitlines() or [""])[0])
        raise ZooError(
            f"{uri} is not in the registry at {safe_uri(registry)} ({first});"
            " check the name and alias, or give the right store with --registry"
        ) from None
    got = str(mv.version)
    if not re.fullmatch(r"[1-9][0-9]{0,17}", got) or (version and int(got) != int(version)):
        raise ZooError(
            f"the registry at {safe_uri(registry)} answered version {printable(got)!r} for"
            f" {uri}, not"
            f" {'version ' + version if version else 'a version number'}; it is not an MLflow"
            " registry to trust: check --registry"
        )
    sha = mv.tags.get(SHA_TAG)
    if not sha:
        raise ZooError(
            f"{uri} (version {got}) has no {SHA_TAG} tag, so it cannot be verified;"
            " publish it with `ganbench zoo publish`"
        )
    if not re.fullmatch("[0-9a-f]{64}", str(sha)):
        raise ZooError(
            f"{uri} (version {got}) has a {SHA_TAG} tag that is not a sha256"
            f" ({printable(str(sha))[:80]!r}); publish it again with `ganbench zoo publish`"
        )
    return got, sha


@contextlib.contextmanager
def mlflow_uris(tracking: str, registry: str) -> Iterator[None]:
    """MLflow's fluent API (``log_model``, ``download_artifacts`` of ``models:/``) reads the
    process-wide tracking and registry URIs, and setting them also exports
    MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI: set for the call, then put back, so that a
    later command in the same process (a notebook, a test) resolves its own store."""
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    names = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    env = {name: os.environ.get(name) for name in names}
    before = (tracking_utils._tracking_uri, registry_utils._registry_uri)
    mlflow.set_tracking_uri(tracking)
    mlflow.set_registry_uri(registry)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before[0])
        registry_utils._registry_uri = before[1]
        for name, value in env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def download_registered(uri: str, dest: Path, registry: str | None) -> Path:
    """Download the ONNX file of a registered model into ``dest``; returns its path.
    (Callers check once, before their work, that the registry answers.)"""
    import mlflow
    from mlflow.exceptions import MlflowException

    registry = registry_uri(registry)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        with mlflow_uris(registry, registry):
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dest)))
    except (MlflowException, OSError) as exc:
        raise DownloadError(
            f"cannot download {uri} from the registry at {safe_uri(registry)}"
            f" ({str(exc).splitlines()[0]}); check the name, the alias and --registry"
        ) from None
    found = sorted(local.rglob("*.onnx")) if local.is_dir() else [local]
    if len(found) != 1:
        raise ZooError(f"{uri} holds {len(found)} .onnx files, not one; it is not a zoo model")
    return found[0]


def publish(
    onnx_path: Path,
    info: GeneratorInfo,
    card: str,
    *,
    aliases: Sequence[str],
    registry: str,
    tracking: str,
    run_id: str | None,
    experiment: str = "ganbench-zoo",
) -> RegisteredVersion:
    """Log ``onnx_path`` into the run (or a new run) with MLflow's ONNX flavor, register
    it as ``info.name``, point ``aliases`` at the new version, and record its sha256.
    The caller has checked that both stores answer."""
    import mlflow
    import numpy as np
    import onnx
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    res, ch = info.resolution, info.channels
    inputs = [TensorSpec(np.dtype(np.float32), (-1, info.z_dim), "z")]
    if info.num_classes:  # a conditional file's labels, one per image
        inputs.append(TensorSpec(np.dtype(np.int64), (-1,), "y"))
    signature = ModelSignature(
        inputs=Schema(inputs),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, ch, res, res), "images")]),
    )
    with mlflow_uris(tracking, registry):
        client = _client(registry)
        tracking_client = MlflowClient(tracking_uri=tracking)
        try:
            # The fluent run context marks the run FINISHED on exit; a run still training (or
            # one that failed) keeps the status it had.
            status = tracking_client.get_run(run_id).info.status if run_id else None
            if run_id is None:
                mlflow.set_experiment(experiment)
            with mlflow.start_run(run_id=run_id, run_name=None if run_id else f"zoo {info.name}"):
                logged = mlflow.onnx.log_model(
                    onnx.load(str(onnx_path)),
                    name=f"zoo-{info.name}",
                    registered_model_name=info.name,
                    signature=signature,
                    save_as_external_data=False,  # one file, hashed and pulled as one
                    metadata={"ganbench": info.to_props()},
                )
                used_run = mlflow.active_run().info.run_id
            if status not in (None, "FINISHED"):
                tracking_client.update_run(used_run, status=status)
            version = str(logged.registered_model_version)
            for alias in aliases:
                client.set_registered_model_alias(info.name, alias, version)
            with tempfile.TemporaryDirectory(prefix="ganbench-publish-") as tmp:
                # Hash what the registry serves, not our file: MLflow re-serialises the model.
                served = download_registered(f"models:/{info.name}/{version}", Path(tmp), registry)
                sha, size = file_digest(served, "sha256"), served.stat().st_size
            client.set_model_version_tag(info.name, version, SHA_TAG, sha)
            client.update_model_version(info.name, version, description=card)
            client.update_registered_model(
                info.name,
                description=f"{info.architecture} generator trained on {info.dataset} at"
                f" {info.resolution}x{info.resolution} (ganbench zoo).",
            )
        except (MlflowException, OSError) as exc:  # requests' connection errors are OSErrors
            text = str(getattr(exc, "message", exc)).strip().splitlines()
            raise TrackingError(
                f"publishing {info.name} to the registry at {safe_uri(registry)} failed:"
                f" {text[0] if text else type(exc).__name__}; check that the registry and the"
                f" tracking store ({safe_uri(tracking)}) answer, then publish again"
            ) from None
        return RegisteredVersion(info.name, version, tuple(aliases), sha, size, used_run)
