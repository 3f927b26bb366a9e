"""A zoo that trusts no one: hostile indexes, servers and files on 127.0.0.1.

An index (``--index URL``), a tracking server and a weights file may come from anyone.
Each test below stands up the hostile party for real (an HTTP server, a fake MLflow REST
API, a pickle that runs code) and checks what ganbench does with it: nothing read from
the local disk, nothing written outside the cache, no download longer than declared, a
warning for plain http, no https download or index moved to plain http by a redirect, no
file bigger than an ONNX file can be or than the disk has room for, no code unpickled, no
terminal control sequences printed, and the cache's own folders kept apart from
generators' folders.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import tomllib
import urllib.parse
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import tomli_w
import torch
from click.testing import CliRunner
from http_files import FileServer, LocalServer
from https_files import RouteServer, make_certificates

from benchmarks.scoring_speed import random_inception_weights as make_random_inception_weights
from ganbench.cli import cli
from ganbench.errors import GanbenchError
from ganbench.zoo.index import INDEX_FORMAT, MAX_FILE_BYTES, MAX_INDEX_BYTES, bundled_index
from ganbench.zoo.registry import SHA_TAG
from ganbench.zoo.store import registered_path
from ganbench_plugins import fidelity
from ganbench_plugins.fidelity import INCEPTION_URL, InceptionV3, default_inception_weights

CPU = torch.device("cpu")


def _entry(name: str, url: str, body: bytes, **changes: object) -> dict:
    """A schema-valid index entry (the shipped generator's facts) for ``body`` at ``url``."""
    [table] = tomllib.loads(Path(bundled_index()).read_text())["generators"]
    del table["card"], table["picture"]
    table |= {"name": name, "url": url, "size": len(body)}
    table["sha256"] = hashlib.sha256(body).hexdigest()
    return table | changes


def _index(*entries: dict) -> str:
    return tomli_w.dumps({"format": INDEX_FORMAT, "generators": list(entries)})


def _zoo(*args: str, color: bool = False):
    return CliRunner().invoke(cli, ["zoo", *args], color=color)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GANBENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("GANBENCH_ZOO_INDEX", raising=False)
    return tmp_path / "cache"


@pytest.fixture
def server():
    with FileServer() as s:
        yield s


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# -- a remote index may not point at local files -------------------------------------


def test_remote_index_cannot_make_pull_copy_a_local_file(server, cache, tmp_path):
    secret = b"ssh-ed25519 AAAA the user's key\n" * 40
    (tmp_path / "secret").write_bytes(secret)
    # Wrong hash on purpose: the old code printed the local file's size and sha256.
    evil = _entry("evil", (tmp_path / "secret").as_uri(), b"x" * 7)
    server.files["/zoo/index.toml"] = _index(evil).encode()
    url = f"{server.url}/zoo/index.toml"
    for args in (["pull", "evil", "--no-progress"], ["info", "evil"], ["list"]):
        result = _zoo(*args, "--index", url)
        assert result.exit_code == 1, result.output
        assert "is remote but points at the local file" in result.output
    assert hashlib.sha256(secret).hexdigest() not in result.output
    assert str(len(secret)) not in result.output
    assert not any(p.read_bytes() == secret for p in _files(cache))
    # Files beside a remote index, and file: URLs in a local index, still work.
    body = b"generator bytes" * 100
    server.files["/zoo/good.onnx"] = body
    server.files["/zoo/index.toml"] = _index(_entry("good", "good.onnx", body)).encode()
    result = _zoo("pull", "good", "--no-progress", "--index", url)
    assert result.exit_code == 0, result.output
    assert Path(result.output.strip().splitlines()[-1]).read_bytes() == body
    local = tmp_path / "local.toml"
    local.write_text(_index(_entry("mine", (tmp_path / "secret").as_uri(), secret)))
    result = _zoo("pull", "mine", "--index", str(local))
    assert result.exit_code == 0, result.output
    assert Path(result.output.strip().splitlines()[-1]).read_bytes() == secret


# -- a registry's version is a number, not a path ------------------------------------


class FakeRegistry(LocalServer):
    """The two REST calls of MLflow's client that a pull makes, answered as told."""

    def __init__(self, version: str, sha256: str) -> None:
        self.answer = {"version": version, "sha256": sha256}
        self.paths: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                outer.paths.append(self.path)
                route = urllib.parse.urlparse(self.path).path
                if route == "/health":
                    body = b"OK"
                elif route.endswith(("/registered-models/alias", "/model-versions/get")):
                    query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
                    body = json.dumps(
                        {
                            "model_version": {
                                "name": query["name"][0],
                                "version": outer.answer["version"],
                                "creation_timestamp": 0,
                                "status": "READY",
                                "tags": [{"key": SHA_TAG, "value": outer.answer["sha256"]}],
                            }
                        }
                    ).encode()
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        super().__init__(Handler)
        self.start()


@pytest.mark.parametrize(
    ("ref", "version", "sha256", "message"),
    [
        ("models:/evil@champion", "/" + "../" * 5 + "escaped", "a" * 64, "answered version"),
        ("models:/evil/1", "2", "a" * 64, "not version 1"),
        ("models:/evil@champion", "1", "\x1b[2J" + "a" * 60, "is not a sha256"),
    ],
)
def test_registry_answers_cannot_escape_the_cache(ref, version, sha256, message, tmp_path):
    registry = FakeRegistry(version, sha256)
    try:
        result = _zoo("pull", ref, "--registry", registry.url, "--cache-dir", str(tmp_path / "c"))
    finally:
        registry.close()
    assert result.exit_code == 1 and message in result.output, result.output
    assert any("model-versions/get" in p or "alias" in p for p in registry.paths)
    assert "\x1b" not in result.output
    # v/../../../../../escaped from CACHE/zoo/_registry/evil lands in tmp_path: nothing may.
    assert not (tmp_path / "escaped").exists() and _files(tmp_path) == []
    assert registered_path(tmp_path / "c", "evil", "1").parent.parent.parent == (
        tmp_path / "c" / "zoo" / "_registry"
    )


# -- a download stops at the declared size -------------------------------------------


class EndlessServer(LocalServer):
    """Streams zeros until the client hangs up (at most ``cap`` bytes), announcing
    ``length`` as Content-Length or, when None, no length at all; counts what it sent."""

    def __init__(self, length: int | None, cap: int = 256 << 20) -> None:
        self.sent = 0
        self.finished = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(200)
                if length is not None:
                    self.send_header("Content-Length", str(length))
                self.end_headers()
                block = bytes(1 << 16)
                try:
                    while outer.sent < cap:
                        self.wfile.write(block)
                        outer.sent += len(block)
                except OSError:  # the client hung up
                    pass
                finally:
                    self.close_connection = True
                    outer.finished.set()

        super().__init__(Handler)
        self.start()


@pytest.mark.parametrize(
    ("length", "message"),
    [(None, "has more than 1000000 bytes"), (10**12, "has 1000000000000 bytes")],
)
def test_download_stops_as_soon_as_it_exceeds_the_declared_size(length, message, cache, tmp_path):
    endless = EndlessServer(length)
    try:
        index = tmp_path / "index.toml"
        index.write_text(_index(_entry("big", f"{endless.url}/big.onnx", bytes(1_000_000))))
        result = _zoo("pull", "big", "--no-progress", "--index", str(index))
        assert endless.finished.wait(30), "the server never saw the client hang up"
    finally:
        endless.close()
    assert result.exit_code == 1 and message in result.output, result.output
    assert "not the 1000000 expected" in result.output and "deleted" in result.output
    assert _files(cache / "zoo") == []
    # The client read at most 1,000,001 bytes; what else left the server sat in socket
    # buffers (a few MB on loopback), not 256 MiB on the user's disk.
    assert endless.sent < 32 << 20, endless.sent


# -- a plain-http index is warned about; an endless one is refused -------------------


def test_plain_http_index_is_warned_about_and_a_huge_one_refused(server, cache, tmp_path):
    body = b"model" * 10
    server.files["/zoo/index.toml"] = _index(_entry("plain", "plain.onnx", body)).encode()
    url = f"{server.url}/zoo/index.toml"
    result = _zoo("list", "--index", url)
    assert result.exit_code == 0, result.output
    assert f"warning: zoo index {url} is plain http" in result.output
    assert "chooses every sha256" in result.output and "use https" in result.output
    local = tmp_path / "index.toml"
    local.write_text(_index(_entry("plain", "plain.onnx", body)))
    quiet = _zoo("list", "--index", str(local))
    assert quiet.exit_code == 0 and "warning" not in quiet.output
    server.files["/zoo/huge.toml"] = b"#" * (MAX_INDEX_BYTES + 1)
    huge = _zoo("list", "--index", f"{server.url}/zoo/huge.toml")
    assert huge.exit_code == 1 and "larger than 16 MiB" in huge.output, huge.output


# -- sizes: no bigger than an ONNX file can be, nor than the disk has room for -------


def test_an_index_declaring_10_tb_is_refused_before_any_download(server, cache, tmp_path):
    body = b"m" * 100
    server.files["/zoo/huge.onnx"] = body
    index = tmp_path / "index.toml"
    huge = _entry("huge", f"{server.url}/zoo/huge.onnx", body, size=10 * 10**12)
    index.write_text(_index(huge))
    for args in (["pull", "huge", "--no-progress"], ["list"]):
        result = _zoo(*args, "--index", str(index))
        assert result.exit_code == 1, result.output
        [line] = result.output.strip().splitlines()
        assert line.startswith(f"Error: zoo index {index} is invalid at generators[0].size:")
        assert f"10000000000000 is greater than the maximum of {MAX_FILE_BYTES}" in line
    assert server.hits == [] and _files(cache) == []


def test_a_file_bigger_than_the_free_space_is_refused_before_any_byte(
    server, cache, tmp_path, monkeypatch
):
    body = b"m" * 100
    server.files["/zoo/big.onnx"] = body
    size = 3 << 29  # 1.5 GiB: an ONNX file may be that big, this disk has 1 GiB free
    index = tmp_path / "index.toml"
    index.write_text(_index(_entry("big", f"{server.url}/zoo/big.onnx", body, size=size)))
    real = shutil.disk_usage

    def one_gib_free(path):  # the one injected fault: a nearly full disk
        return real(path)._replace(free=1 << 30)

    monkeypatch.setattr(shutil, "disk_usage", one_gib_free)
    result = _zoo("pull", "big", "--no-progress", "--index", str(index))
    assert result.exit_code == 1, result.output
    error = result.output.strip().splitlines()[-1]  # after "pulling big (...) from URL"
    assert error.startswith(
        f"Error: not enough free space for big.onnx ({size:,} bytes, 1.5 GiB) in"
        f" {cache / 'zoo' / 'big'}: 1,073,741,824 bytes, 1.0 GiB free"
    ), error
    assert server.hits == []  # not one GET for the file
    assert not (cache / "zoo" / "big").exists()


# -- an https index or download is never moved to plain http ------------------------


@pytest.fixture
def https(tmp_path, monkeypatch):
    """An HTTPS server whose throwaway CA the client trusts through $SSL_CERT_FILE."""
    certs = tmp_path / "certs"
    certs.mkdir()
    ca, cert, key = make_certificates(certs)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    with RouteServer((cert, key)) as s:
        yield s


def _refused(result, start: str, target: str) -> None:
    assert result.exit_code == 1, result.output
    error = result.output.strip().splitlines()[-1]
    assert error.startswith(f"Error: {start} redirects (HTTP 302) to {target}, from https"), error
    assert "to plain http: refused" in error and "redirect to https" in error


def test_https_redirected_to_http_is_refused_for_index_and_pull(https, server, cache, tmp_path):
    body = b"generator bytes" * 100
    server.files["/zoo/g.onnx"] = body
    server.files["/zoo/index.toml"] = _index(_entry("g", "g.onnx", body)).encode()
    # https -> https is followed: the index and the file beside it, both moved.
    https.files["/new/index.toml"] = _index(_entry("g", "g.onnx", body)).encode()
    https.files["/new/g.onnx"] = body
    https.redirects["/zoo/index.toml"] = f"{https.url}/new/index.toml"
    https.redirects["/zoo/g.onnx"] = f"{https.url}/new/g.onnx"
    index_url = f"{https.url}/zoo/index.toml"
    good = _zoo("pull", "g", "--no-progress", "--index", index_url)
    assert good.exit_code == 0, good.output
    assert Path(good.output.strip().splitlines()[-1]).read_bytes() == body
    assert "warning" not in good.output
    assert _zoo("remove", "g", "--index", index_url).exit_code == 0
    # The file moved to plain http: refused, though its sha256 would match.
    https.redirects["/zoo/g.onnx"] = f"{server.url}/zoo/g.onnx"
    result = _zoo("pull", "g", "--no-progress", "--index", index_url)
    _refused(result, f"{https.url}/zoo/g.onnx", f"{server.url}/zoo/g.onnx")
    # The index moved to plain http: refused, not read, and not replaced by the cached copy.
    https.redirects["/zoo/index.toml"] = f"{server.url}/zoo/index.toml"
    for args in (["list"], ["pull", "g", "--no-progress"]):
        result = _zoo(*args, "--index", index_url)
        _refused(result, index_url, f"{server.url}/zoo/index.toml")
        assert "using the copy cached" not in result.output
    assert server.hits == []  # nothing ever left TLS
    assert [p.parent.name for p in _files(cache / "zoo")] == ["_indexes"]  # the good index


def test_inception_weights_are_fetched_over_https_only(https, server, tmp_path, monkeypatch):
    weights = b"inception weights" * 1000
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # torch.hub: TORCH_HOME/hub
    url = f"{https.url}/releases/{INCEPTION_URL.rsplit('/', 1)[1]}"
    monkeypatch.setattr(fidelity, "INCEPTION_URL", url)
    server.files["/w.pth"] = weights
    https.redirects[url.removeprefix(https.url)] = f"{server.url}/w.pth"
    with pytest.raises(GanbenchError) as err:
        default_inception_weights(progress=False)
    [line] = str(err.value).splitlines()
    assert f"{url} redirects (HTTP 302) to {server.url}/w.pth, from https" in line, line
    assert "copy that file to" in line and server.hits == []
    # Served over https: fetched, checked against the 8 hex digits its name carries.
    https.redirects[url.removeprefix(https.url)] = f"{https.url}/cdn/w.pth"
    https.files["/cdn/w.pth"] = weights
    with pytest.raises(GanbenchError, match="does not start with 6726825d; the download was"):
        default_inception_weights(progress=False)
    folder = tmp_path / "torch" / "hub" / "checkpoints"
    assert list(folder.iterdir()) == []
    monkeypatch.setattr(fidelity, "INCEPTION_HASH_PREFIX", hashlib.sha256(weights).hexdigest()[:8])
    path = default_inception_weights(progress=False)
    assert path == folder / INCEPTION_URL.rsplit("/", 1)[1] and path.read_bytes() == weights
    assert list(folder.iterdir()) == [path]


# -- index text cannot drive the terminal --------------------------------------------

HOSTILE_TEXT = {
    "dataset": "digits\x1b[2J\x1b[1;31mHACKED",
    "data_license": "CC\x1b]0;pwned\x07 BY\r\x1b[K",
    "architecture": "dcgan\u202egpj.exe",
    "metrics": [{"name": "fid\x1b[8m", "value": 1.0, "how": "line\nbreak\u200b\x9b31m"}],
}


def _unprintable(text: str) -> list[str]:
    return sorted({c for c in text if not c.isprintable() and c != "\n"})


def test_list_and_info_print_no_control_characters(server, cache):
    body = b"model" * 10
    server.files["/zoo/index.toml"] = _index(
        _entry("loud", "loud.onnx", body, **HOSTILE_TEXT)
    ).encode()
    url = f"{server.url}/zoo/index.toml"
    listed = _zoo("list", "--index", url, color=True)  # as on a terminal: ANSI kept
    shown = _zoo("info", "loud", "--index", url, color=True)
    for result in (listed, shown):
        assert result.exit_code == 0, result.output
        assert _unprintable(result.output) == []
    assert "digits?[2J?[1;31mHACKED" in listed.output
    assert "CC?]0;pwned? BY ?[K" in shown.output and "dcgan?gpj.exe" in shown.output
    assert "fid?[8m = 1" in shown.output and "line break??31m" in shown.output
    # A schema error quotes the bad value: cleaned too.
    server.files["/zoo/index.toml"] = _index(
        _entry("loud", "loud.onnx", body, z_distribution="\x1b[2Juniform")
    ).encode()
    bad = _zoo("list", "--index", url, color=True)
    assert bad.exit_code == 1 and "?[2Juniform" in bad.output and _unprintable(bad.output) == []


# -- generators and ganbench's own cache folders are apart ---------------------------


def test_generators_named_like_cache_folders_do_not_share_them(server, cache):
    bodies = {name: name.encode() * 100 for name in ("indexes", "registry")}
    for name, body in bodies.items():
        server.files[f"/zoo/{name}.onnx"] = body
    entries = [_entry(name, f"{name}.onnx", body) for name, body in bodies.items()]
    server.files["/zoo/index.toml"] = _index(*entries).encode()
    url = f"{server.url}/zoo/index.toml"
    registered = registered_path(cache, "tiny", "1")  # as `zoo pull models:/tiny/1` left it
    registered.parent.mkdir(parents=True)
    registered.write_bytes(b"registered")
    for name in ("indexes", "registry"):
        pulled = _zoo("pull", name, "--no-progress", "--index", url)
        assert pulled.exit_code == 0, pulled.output
        assert Path(pulled.output.strip().splitlines()[-1]).read_bytes() == bodies[name]
        removed = _zoo("remove", name, "--index", url)
        assert removed.exit_code == 0 and "removed" in removed.output, removed.output
    assert registered.read_bytes() == b"registered"
    server.httpd.shutdown()  # offline: the cached copy of the index must still be there
    server.httpd.server_close()
    offline = _zoo("list", "--index", url)
    assert offline.exit_code == 0, offline.output
    assert "unreachable; using the copy cached" in offline.output and "indexes" in offline.output
    # An index cannot name a generator like ganbench's folders ("_..."): the schema says no.
    bad = _entry("_indexes", "x.onnx", b"x")
    (cache / "bad.toml").write_text(_index(bad))
    result = _zoo("list", "--index", str(cache / "bad.toml"))
    assert result.exit_code == 1 and "generators[0].name" in result.output


# -- Inception weights are never unpickled -------------------------------------------


class RunsCode:
    """Unpickled with weights_only=False, this creates ``marker``: proof code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory):
    return make_random_inception_weights(tmp_path_factory.mktemp("inception"))


def test_inception_weights_that_run_code_are_refused_from_every_source(
    random_weights, tmp_path, monkeypatch
):
    marker = tmp_path / "code-ran"
    state = torch.load(random_weights, weights_only=True)
    evil = tmp_path / "evil.pth"
    torch.save({**state, "fc.weight": RunsCode(marker)}, evil)
    hub = tmp_path / "hub"
    (hub / "checkpoints").mkdir(parents=True)
    cached = hub / "checkpoints" / INCEPTION_URL.rsplit("/", 1)[1]
    cached.write_bytes(evil.read_bytes())  # a poisoned torch.hub cache
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # torch.hub's dir: TORCH_HOME/hub
    monkeypatch.delenv("GANBENCH_INCEPTION_WEIGHTS", raising=False)
    for source, flag in ((evil, str(evil)), (evil, "env"), (cached, None)):
        if flag == "env":
            monkeypatch.setenv("GANBENCH_INCEPTION_WEIGHTS", str(evil))
        with pytest.raises(GanbenchError) as caught:
            InceptionV3().load(None if flag == "env" else flag, CPU)
        monkeypatch.delenv("GANBENCH_INCEPTION_WEIGHTS", raising=False)
        text = str(caught.value)
        assert text.startswith(f"{source} is not usable Inception-v3 weights"), text
        assert "could run code" in text and "io.open" in text and "\n" not in text
        assert not marker.exists()
    # Loaded as weights but not a state dict of tensors: refused, one line.
    for obj, what in (([1, 2], "list"), ({**state, "fc.bias": "x"}, "not tensors")):
        odd = tmp_path / "odd.pth"
        torch.save(obj, odd)
        with pytest.raises(GanbenchError, match=f"not a plain state dict of tensors.*{what}"):
            InceptionV3().load(str(odd), CPU)


def test_good_weights_give_torch_fidelitys_own_features(random_weights):
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    loaded = InceptionV3().load(str(random_weights), CPU)
    assert loaded.weights_sha256 == hashlib.sha256(random_weights.read_bytes()).hexdigest()
    reference = FeatureExtractorInceptionV3(
        "ref", ["2048", "logits_unbiased"], feature_extractor_weights_path=str(random_weights)
    ).eval()
    images = torch.randint(0, 256, (2, 3, 48, 48), generator=torch.Generator().manual_seed(0))
    images = images.to(torch.uint8)
    with torch.no_grad():
        ours = loaded.module(images)
        pool, logits = reference(images)
    assert (pool[0] - pool[1]).abs().max() > 1e-3  # the features tell the images apart
    torch.testing.assert_close(ours["pool"], pool, rtol=0, atol=0)
    torch.testing.assert_close(ours["logits"], logits, rtol=0, atol=0)
