"""``zoo publish --registry`` into a real MLflow Model Registry (SQLite) and
``zoo pull models:/NAME@ALIAS`` back, verified by the sha256 tag."""

from __future__ import annotations

import hashlib
import tomllib

import mlflow
import numpy as np
import pytest
from click.testing import CliRunner
from mlflow import MlflowClient

from ganbench.cli import cli
from ganbench.zoo.registry import SHA_TAG


@pytest.fixture(scope="module")
def published(zoo_run, tmp_path_factory):
    _folder, uri, run_id = zoo_run
    registry = f"sqlite:///{tmp_path_factory.mktemp('registry') / 'registry.db'}"
    index = tmp_path_factory.mktemp("regindex") / "index.toml"
    args = ["zoo", "publish", run_id, "--name", "tiny-digits", "--tracking-uri", uri]
    args += ["--registry", registry, "--alias", "champion", "--alias", "candidate"]
    result = CliRunner().invoke(cli, [*args, "--index", str(index)])
    assert result.exit_code == 0, result.output
    return registry, uri, run_id, index, result.output


def test_publish_registers_a_version_with_aliases_and_its_sha256(published):
    registry, _, run_id, _, output = published
    client = MlflowClient(tracking_uri=registry, registry_uri=registry)
    version = client.get_model_version_by_alias("tiny-digits", "champion")
    assert client.get_model_version_by_alias("tiny-digits", "candidate").version == version.version
    assert version.run_id == run_id
    assert len(version.tags[SHA_TAG]) == 64
    assert "# tiny-digits" in version.description  # the model card
    assert "models:/tiny-digits@champion" in output


def test_registered_model_loads_with_mlflow_onnx_flavor(published):
    from ganbench.zoo.registry import mlflow_uris

    registry, *_ = published
    with mlflow_uris(registry, registry):  # and this process's settings put back after
        model = mlflow.onnx.load_model("models:/tiny-digits@champion")
        pyfunc = mlflow.pyfunc.load_model("models:/tiny-digits@champion")
    props = {p.key: p.value for p in model.metadata_props}
    assert props["ganbench.format"] == "ganbench-zoo/1" and props["z_dim"] == "100"
    images = pyfunc.predict({"z": np.zeros((2, 100), np.float32)})
    assert images["images"].shape == (2, 1, 32, 32)


def test_pull_by_alias_is_verified_and_cached(published, tmp_path, monkeypatch):
    registry, *_ = published
    monkeypatch.setenv("GANBENCH_CACHE_DIR", str(tmp_path))
    result = CliRunner().invoke(
        cli, ["zoo", "pull", "models:/tiny-digits@champion", "--registry", registry]
    )
    assert result.exit_code == 0, result.output
    path = tmp_path / "zoo" / "_registry" / "tiny-digits" / "v1" / "tiny-digits.onnx"
    assert result.output.strip().endswith(str(path))
    client = MlflowClient(tracking_uri=registry, registry_uri=registry)
    tag = client.get_model_version("tiny-digits", "1").tags[SHA_TAG]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == tag
    out = tmp_path / "g.png"
    sampled = CliRunner().invoke(
        cli,
        [
            "zoo",
            "sample",
            "models:/tiny-digits@champion",
            "--registry",
            registry,
            "-n",
            "4",
            "-o",
            str(out),
        ],
    )
    assert sampled.exit_code == 0 and out.is_file()


def test_index_entry_with_a_models_url_pulls_through_the_registry(published, tmp_path):
    registry, _, _, index, _ = published
    [entry] = tomllib.loads(index.read_text())["generators"]
    assert entry["url"] == "models:/tiny-digits@champion"
    result = CliRunner().invoke(
        cli,
        [
            "zoo",
            "pull",
            "tiny-digits",
            "--index",
            str(index),
            "--registry",
            registry,
            "--cache-dir",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    cached = tmp_path / "zoo" / "tiny-digits" / "tiny-digits.onnx"
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == entry["sha256"]


def test_a_tampered_sha256_tag_fails_the_pull_and_keeps_nothing(published, tmp_path):
    registry, *_ = published
    client = MlflowClient(tracking_uri=registry, registry_uri=registry)
    good = client.get_model_version("tiny-digits", "1").tags[SHA_TAG]
    client.set_model_version_tag("tiny-digits", "1", SHA_TAG, "0" * 64)
    try:
        result = CliRunner().invoke(
            cli,
            [
                "zoo",
                "pull",
                "models:/tiny-digits/1",
                "--registry",
                registry,
                "--cache-dir",
                str(tmp_path),
            ],
        )
    finally:
        client.set_model_version_tag("tiny-digits", "1", SHA_TAG, good)
    assert result.exit_code == 1 and "checksum mismatch" in result.output
    assert good in result.output and "0" * 64 in result.output
    assert not list((tmp_path / "zoo").rglob("*.onnx"))


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("models:/no-such-model@champion", "is not in the registry"),
        ("models:/tiny-digits@nobody", "is not in the registry"),
        ("models:/tiny-digits", "not a registry model URI"),
    ],
)
def test_unknown_registry_models(published, tmp_path, ref, message):
    registry, *_ = published
    result = CliRunner().invoke(
        cli, ["zoo", "pull", ref, "--registry", registry, "--cache-dir", str(tmp_path)]
    )
    assert result.exit_code != 0 and message in result.output


def test_reserved_alias_and_unreachable_registry(zoo_run):
    _, uri, run_id = zoo_run
    base = ["zoo", "publish", run_id, "--name", "x", "--tracking-uri", uri]
    latest = CliRunner().invoke(cli, [*base, "--alias", "latest"])
    assert latest.exit_code == 2 and "reserved" in latest.output
    down = CliRunner().invoke(cli, [*base, "--registry", "http://127.0.0.1:9"])
    assert down.exit_code == 1 and "cannot reach the MLflow tracking server" in down.output
