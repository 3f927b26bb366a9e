"""The zoo index: its JSON Schema, the errors for bad indexes, remote indexes offline."""

from __future__ import annotations

import copy
import tomllib

import jsonschema
import pytest
import tomli_w
from http_files import FileServer

from ganbench.errors import UnknownModelError, ZooError
from ganbench.zoo.index import (
    MAX_FILE_BYTES,
    ZooEntry,
    bundled_index,
    load_index,
    parse,
    render,
    schema,
    upsert,
)

GOOD = {
    "format": "ganbench-zoo-index/1",
    "generators": [
        {
            "name": "dcgan-x-32",
            "url": "dcgan-x-32.onnx",
            "sha256": "ab" * 32,
            "size": 10,
            "architecture": "dcgan",
            "dataset": "digits",
            "resolution": 32,
            "channels": 1,
            "z_dim": 100,
            "z_distribution": "uniform",
            "output_range": [-1.0, 1.0],
            "data_license": "CC BY 4.0",
            "ganbench_version": "0.1.0",
            "training_run": "mlflow run abc",
            "checkpoint": "runs:/abc/checkpoints/last.pt (step 6)",
            "opset": 20,
            "parity": "matches",
            "metrics": [{"name": "digits-cnn/fid_2k", "value": 4.9, "how": "digits-cnn ..."}],
        }
    ],
}


def _with(**changes):
    data = copy.deepcopy(GOOD)
    for key, value in changes.items():
        if value is None:
            del data["generators"][0][key]
        else:
            data["generators"][0][key] = value
    return tomli_w.dumps(data)


def test_schema_is_valid_and_the_shipped_index_follows_it():
    jsonschema.Draft202012Validator.check_schema(schema())
    sizes = (schema()["$defs"][d]["properties"]["size"] for d in ("generator", "torch_fidelity"))
    assert all(size["maximum"] == MAX_FILE_BYTES == 2**31 - 1 for size in sizes)
    with open(bundled_index(), "rb") as fh:
        jsonschema.validate(tomllib.load(fh), schema())


def test_a_good_index_round_trips():
    index = parse(tomli_w.dumps(GOOD), "good.toml")
    [entry] = index.entries
    assert entry.info.metrics[0].value == 4.9 and entry.info.output_range == (-1.0, 1.0)
    again = parse(render(index.entries), "again")
    assert again.entries == index.entries


@pytest.mark.parametrize(
    ("changes", "where"),
    [
        ({"sha256": "abc"}, "generators[0].sha256"),
        ({"url": None}, "'url' is a required property"),
        ({"url": "ftp://host/x.onnx"}, "generators[0].url"),
        ({"url": "models:/name"}, "generators[0].url"),
        ({"size": 0}, "generators[0].size"),
        ({"size": 10 * 10**12}, "generators[0].size: 10000000000000 is greater than the max"),
        ({"size": 2**31}, "generators[0].size"),  # protobuf cannot write an ONNX file this big
        ({"z_distribution": "cauchy"}, "generators[0].z_distribution"),
        ({"name": "Has Spaces"}, "generators[0].name"),
        ({"colour": "red"}, "'colour' was unexpected"),
        ({"metrics": [{"name": "fid", "value": "low", "how": "x"}]}, "metrics[0].value"),
    ],
)
def test_schema_violations_are_named(changes, where):
    with pytest.raises(ZooError, match="is invalid at") as info:
        parse(_with(**changes), "bad.toml")
    assert where in str(info.value) and "bad.toml" in str(info.value)


def test_urls_the_schema_accepts():
    for url in (
        "https://h/x.onnx",
        "file:///x.onnx",
        "models:/n@champion",
        "models:/n/3",
        "a/b.onnx",
    ):
        parse(_with(url=url), "ok")


def test_duplicate_names_and_broken_toml():
    data = copy.deepcopy(GOOD)
    data["generators"].append(copy.deepcopy(data["generators"][0]))
    with pytest.raises(ZooError, match="more than once"):
        parse(tomli_w.dumps(data), "dup.toml")
    with pytest.raises(ZooError, match="not valid TOML"):
        parse("generators = [", "broken.toml")


def test_unknown_name_lists_close_matches():
    index = parse(tomli_w.dumps(GOOD), "good.toml")
    with pytest.raises(UnknownModelError, match="Did you mean dcgan-x-32"):
        index.get("dcgan-x-23")


def test_upsert_adds_and_replaces_atomically(tmp_path):
    path = tmp_path / "index.toml"
    [entry] = parse(tomli_w.dumps(GOOD), "good").entries
    assert upsert(path, entry) is False
    newer = ZooEntry(entry.info, "other.onnx", "cd" * 32, 11)
    assert upsert(path, newer) is True
    [stored] = load_index(str(path), tmp_path).entries
    assert stored.url == "other.onnx" and stored.size == 11
    assert [p.name for p in tmp_path.iterdir()] == ["index.toml"]  # no temporary file left


def test_relative_urls_resolve_against_the_index(tmp_path):
    (tmp_path / "index.toml").write_text(tomli_w.dumps(GOOD))
    index = load_index(str(tmp_path / "index.toml"), tmp_path / "cache")
    assert index.resolve("dcgan-x-32.onnx") == str(tmp_path / "dcgan-x-32.onnx")
    remote = parse(tomli_w.dumps(GOOD), "https://example.org/zoo/index.toml")
    assert remote.resolve("a.onnx") == "https://example.org/zoo/a.onnx"
    assert remote.resolve("models:/a@b") == "models:/a@b"


def test_remote_index_is_cached_and_used_offline(tmp_path):
    messages = []
    with FileServer() as server:
        server.files["/zoo/index.toml"] = tomli_w.dumps(GOOD).encode()
        url = f"{server.url}/zoo/index.toml"
        online = load_index(url, tmp_path, say=messages.append)
    assert online.names() == ["dcgan-x-32"]
    assert [m.split(":")[0] for m in messages] == ["warning"]  # plain http
    offline = load_index(url, tmp_path, say=messages.append, timeout=2)
    assert offline.names() == ["dcgan-x-32"]
    assert "unreachable" in messages[-1] and "cached" in messages[-1]
    with pytest.raises(ZooError, match="no copy is cached"):
        load_index(url, tmp_path / "other", timeout=2)


def test_missing_index_file(tmp_path):
    with pytest.raises(ZooError, match="does not exist"):
        load_index(str(tmp_path / "none.toml"), tmp_path)
