"""Downloads against a real HTTP(S) server on 127.0.0.1: good, truncated, corrupt, resumed,
too big for the disk, redirected from https to http."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
from http.server import BaseHTTPRequestHandler

import pytest
from http_files import FileServer, LocalServer
from https_files import RouteServer, make_certificates

from ganbench.data.download import download
from ganbench.errors import DownloadError
from ganbench.plugins.interfaces import RemoteFile

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


# -- the disk's free space is checked before the first byte --------------------------


def test_a_file_larger_than_the_free_space_is_refused_before_any_byte(server, tmp_path):
    free = shutil.disk_usage(tmp_path).free
    size = free + (1 << 40)  # a terabyte more than this disk has free: no mock needed
    remote = RemoteFile(f"{server.url}/data.bin", "raw/data.bin", md5=MD5, size=size)
    with pytest.raises(DownloadError) as err:
        download(remote, tmp_path, progress=False)
    [line] = str(err.value).splitlines()
    assert line.startswith(f"not enough free space for raw/data.bin ({size:,} bytes,"), line
    assert f"in {tmp_path / 'raw'}:" in line and "--cache-dir" in line
    assert server.hits == [] and list(tmp_path.iterdir()) == []  # not even the folder


def test_an_announced_length_larger_than_the_free_space_is_refused_unread(tmp_path):
    """No size declared (a dataset's file): the server's Content-Length is checked before
    the body is read."""
    announced = shutil.disk_usage(tmp_path).free + (1 << 40)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(announced))
            self.end_headers()
            self.wfile.write(b"x" * 1000)

    with LocalServer(Handler) as huge, pytest.raises(DownloadError) as err:
        download(RemoteFile(f"{huge.url}/big.bin", "big.bin"), tmp_path, progress=False)
    assert str(err.value).startswith(f"not enough free space for big.bin ({announced:,} bytes")
    assert [p.name for p in tmp_path.iterdir()] == []  # no .part: not one byte written


# -- an https download is never moved to plain http ----------------------------------


@pytest.fixture
def https(tmp_path, monkeypatch):
    """An HTTPS server whose throwaway CA the client trusts through $SSL_CERT_FILE."""
    certs = tmp_path / "certs"
    certs.mkdir()
    ca, cert, key = make_certificates(certs)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    with RouteServer((cert, key)) as s:
        yield s


def test_https_redirected_to_http_is_refused(https, server, tmp_path):
    out = tmp_path / "out"
    https.files["/data.bin"] = BODY
    https.redirects["/moved.bin"] = f"{https.url}/data.bin"  # https -> https: followed
    path = download(RemoteFile(f"{https.url}/moved.bin", "a.bin", md5=MD5), out, progress=False)
    assert path.read_bytes() == BODY
    https.redirects["/down.bin"] = f"{server.url}/data.bin"  # https -> http: refused
    https.redirects["/hop.bin"] = f"{https.url}/down.bin"  # at any hop of a chain
    for start in ("/down.bin", "/hop.bin"):
        remote = RemoteFile(f"{https.url}{start}", "b.bin", md5=MD5)
        with pytest.raises(DownloadError) as err:
            download(remote, out, progress=False)
        [line] = str(err.value).splitlines()
        assert f"redirects (HTTP 302) to {server.url}/data.bin, from https to plain http:" in line
        assert "refused" in line
    assert server.hits == []  # not one request left TLS
    assert sorted(p.name for p in out.iterdir()) == ["a.bin"]
