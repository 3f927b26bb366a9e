"""Downloads against a real HTTP server on 127.0.0.1: good, truncated, corrupt, resumed."""

from __future__ import annotations

import hashlib
import os
import socket

import pytest
from http_files import FileServer

from ganbench.data.download import download
from ganbench.errors import DownloadError
from ganbench.interfaces import RemoteFile

BODY = os.urandom(3 * (1 << 20) + 123)  # a few chunks, not a multiple of the chunk size
MD5 = hashlib.md5(BODY).hexdigest()
SHA256 = hashlib.sha256(BODY).hexdigest()


@pytest.fixture
def server():
    with FileServer() as s:
        s.files["/data.bin"] = BODY
        yield s


def test_good_download_is_verified_and_renamed(server, tmp_path):
    path = download(
        RemoteFile(f"{server.url}/data.bin", "data.bin", md5=MD5), tmp_path, progress=False
    )
    assert path == tmp_path / "data.bin" and path.read_bytes() == BODY
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.bin"]
    # a verified file is not fetched again
    hits = len(server.hits)
    download(
        RemoteFile(f"{server.url}/data.bin", "data.bin", sha256=SHA256), tmp_path, progress=False
    )
    assert len(server.hits) == hits


def test_wrong_checksum_deletes_the_download_and_names_both_hashes(server, tmp_path):
    wrong = "0" * 32
    with pytest.raises(DownloadError) as err:
        download(
            RemoteFile(f"{server.url}/data.bin", "data.bin", md5=wrong), tmp_path, progress=False
        )
    message = str(err.value)
    assert "checksum mismatch for data.bin" in message
    assert f"expected md5 {wrong}, got {MD5}" in message and "deleted" in message
    assert list(tmp_path.iterdir()) == []


def test_truncated_download_is_never_used_then_resumes(server, tmp_path):
    remote = RemoteFile(f"{server.url}/data.bin", "data.bin", sha256=SHA256)
    server.cut_after["/data.bin"] = 1_000_000
    with pytest.raises(DownloadError, match=r"(truncated|broke off).*run the command again"):
        download(remote, tmp_path, progress=False)
    assert not (tmp_path / "data.bin").exists()
    assert (tmp_path / "data.bin.part").stat().st_size == 1_000_000
    path = download(remote, tmp_path, progress=False)  # resumes with a Range request
    assert server.hits[-1] == ("/data.bin", "bytes=1000000-")
    assert path.read_bytes() == BODY
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.bin"]


def test_server_without_ranges_restarts(server, tmp_path):
    server.ranges = False
    (tmp_path / "data.bin.part").write_bytes(BODY[:5000])
    path = download(
        RemoteFile(f"{server.url}/data.bin", "data.bin", md5=MD5), tmp_path, progress=False
    )
    assert path.read_bytes() == BODY


def test_corrupt_existing_file_is_replaced(server, tmp_path):
    (tmp_path / "data.bin").write_bytes(b"not the file")
    path = download(
        RemoteFile(f"{server.url}/data.bin", "data.bin", md5=MD5), tmp_path, progress=False
    )
    assert path.read_bytes() == BODY


def test_missing_and_unreachable(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(RemoteFile(f"{server.url}/nope.bin", "nope.bin"), tmp_path, progress=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError, match=r"cannot download .* fetch the file by hand"):
        download(RemoteFile(f"http://127.0.0.1:{port}/x", "x"), tmp_path, progress=False, timeout=5)
    assert not any(p.name in ("nope.bin", "x") for p in tmp_path.iterdir())


def test_local_file_url(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(BODY)
    out = tmp_path / "out"
    path = download(RemoteFile(f"file://{source}", "copy.bin", md5=MD5), out, progress=False)
    assert path.read_bytes() == BODY
