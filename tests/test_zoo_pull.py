"""``ganbench zoo pull`` from a real HTTP server on 127.0.0.1: good, truncated, wrong
checksum, interrupted then resumed; the cache re-verified on use and used offline."""

from __future__ import annotations

import hashlib
import tomllib

import pytest
import tomli_w
from click.testing import CliRunner
from http_files import FileServer

from ganbench.cli import cli


@pytest.fixture
def served(zoo_export, tmp_path, monkeypatch):
    """An HTTP server with the exported file, an index pointing at it, a fresh cache."""
    out, _ = zoo_export
    body = (out / "tiny-digits.onnx").read_bytes()
    data = tomllib.loads((out / "index.toml").read_text())
    monkeypatch.setenv("GANBENCH_CACHE_DIR", str(tmp_path / "cache"))
    with FileServer() as server:
        server.files["/m/tiny-digits.onnx"] = body
        data["generators"][0]["url"] = f"{server.url}/m/tiny-digits.onnx"
        del data["generators"][0]["card"], data["generators"][0]["picture"]
        index = tmp_path / "index.toml"
        index.write_text(tomli_w.dumps(data))
        monkeypatch.setenv("GANBENCH_ZOO_INDEX", str(index))
        yield server, body, index, tmp_path / "cache" / "zoo" / "tiny-digits"


def _pull(*extra):
    return CliRunner().invoke(cli, ["zoo", "pull", "tiny-digits", "--no-progress", *extra])


def test_good_download_lands_verified_in_the_cache(served):
    server, body, _, folder = served
    result = _pull()
    assert result.exit_code == 0, result.output
    cached = folder / "tiny-digits.onnx"
    assert result.output.strip().endswith(str(cached))
    assert cached.read_bytes() == body and sorted(p.name for p in folder.iterdir()) == [cached.name]
    # A second pull uses the cache: no new request.
    hits = len(server.hits)
    assert _pull().exit_code == 0 and len(server.hits) == hits


def test_truncated_download_is_kept_as_part_and_resumed(served):
    server, body, _, folder = served
    server.cut_after["/m/tiny-digits.onnx"] = 100_000
    result = _pull()
    assert result.exit_code == 1
    assert "truncated" in result.output or "broke off" in result.output
    assert "run the command again to resume" in result.output
    assert not (folder / "tiny-digits.onnx").exists()
    assert (folder / "tiny-digits.onnx.part").stat().st_size == 100_000
    result = _pull()
    assert result.exit_code == 0, result.output
    assert server.hits[-1] == ("/m/tiny-digits.onnx", "bytes=100000-")  # resumed, not restarted
    assert (folder / "tiny-digits.onnx").read_bytes() == body
    assert not (folder / "tiny-digits.onnx.part").exists()


def test_server_without_ranges_restarts_the_download(served):
    server, body, _, folder = served
    server.cut_after["/m/tiny-digits.onnx"] = 50_000
    assert _pull().exit_code == 1
    server.ranges = False
    assert _pull().exit_code == 0
    assert (folder / "tiny-digits.onnx").read_bytes() == body


def test_wrong_checksum_deletes_the_download_and_names_both_hashes(served):
    server, body, _index, folder = served
    server.files["/m/tiny-digits.onnx"] = body[:-4] + b"XXXX"  # same size, other bytes
    result = _pull()
    assert result.exit_code == 1
    good = hashlib.sha256(body).hexdigest()
    bad = hashlib.sha256(server.files["/m/tiny-digits.onnx"]).hexdigest()
    assert "checksum mismatch for tiny-digits.onnx" in result.output
    assert good in result.output and bad in result.output and "deleted" in result.output
    assert not any(folder.iterdir())


def test_larger_file_than_the_index_says_is_refused(served):
    server, body, _, folder = served
    server.files["/m/tiny-digits.onnx"] = body + b"extra"
    result = _pull()
    assert result.exit_code == 1 and "not the" in result.output and "deleted" in result.output
    assert not any(folder.iterdir())


def test_damaged_cached_file_is_caught_on_use_and_fetched_again(served):
    _, body, _, folder = served
    assert _pull().exit_code == 0
    cached = folder / "tiny-digits.onnx"
    cached.write_bytes(body[:1000])
    result = _pull()
    assert result.exit_code == 0, result.output
    assert "does not match the index" in result.output and "fetching it again" in result.output
    assert cached.read_bytes() == body


def test_pulled_generator_samples_offline(served, tmp_path):
    server, _, _, _ = served
    assert _pull().exit_code == 0
    server.httpd.shutdown()  # the network is gone
    server.httpd.server_close()
    result = CliRunner().invoke(
        cli, ["zoo", "sample", "tiny-digits", "-n", "4", "-o", str(tmp_path / "g.png")]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "g.png").is_file()


def test_sample_pulls_a_generator_that_is_not_cached_yet(served, tmp_path):
    _, body, _, folder = served
    result = CliRunner().invoke(
        cli, ["zoo", "sample", "tiny-digits", "-n", "2", "-o", str(tmp_path / "g.png")]
    )
    assert result.exit_code == 0, result.output
    assert "pulling tiny-digits" in result.output
    assert (folder / "tiny-digits.onnx").read_bytes() == body


def test_unreachable_server_fails_clearly(served):
    server, _, _, folder = served
    server.httpd.shutdown()
    server.httpd.server_close()
    result = _pull()
    assert result.exit_code == 1 and "cannot download" in result.output
    assert not (folder / "tiny-digits.onnx").exists()


def test_list_info_and_remove(served):
    _, _, _index, folder = served
    listed = CliRunner().invoke(cli, ["zoo", "list"])
    assert listed.exit_code == 0 and "tiny-digits" in listed.output and "no" in listed.output
    assert _pull().exit_code == 0
    info = CliRunner().invoke(cli, ["zoo", "info", "tiny-digits"])
    assert info.exit_code == 0 and "(verified)" in info.output and "z_dim 100" in info.output
    assert "digits-cnn/fid_100" in info.output
    removed = CliRunner().invoke(cli, ["zoo", "remove", "tiny-digits"])
    assert removed.exit_code == 0 and not folder.exists()
    unknown = CliRunner().invoke(cli, ["zoo", "info", "tiny-digit"])
    assert unknown.exit_code == 2 and "Did you mean tiny-digits?" in unknown.output
