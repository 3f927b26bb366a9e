"""Downloading a file: progress bar, resume, checksum, and an atomic rename.

The bytes go to ``NAME.part`` and only a file whose checksum matches is renamed to
``NAME``; a truncated or corrupt download is never used. An interrupted download resumes
from its ``.part`` file where the server supports HTTP ranges, and restarts where not.
When the size is known (a zoo index declares it) a download stops, and is deleted, as soon
as it is longer: a hostile or broken source cannot fill the disk. Before the first byte
(as soon as the size is known: declared, else the server's Content-Length) the folder's
free space is checked, so a file that cannot fit fails at once, not after hours. An https
URL redirected to plain http is refused (:mod:`ganbench.files.urls`), and the finished file
is fsync'ed before and after its rename (:func:`ganbench.files.sealed.commit_file`).
(torchvision's own downloader writes to the final name and checks afterwards, and offers
neither resume nor our progress bar; hence this module.)
"""

from __future__ import annotations

import hashlib
import http.client
import shutil
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from ganbench.errors import DownloadError
from ganbench.files.sealed import commit_file
from ganbench.files.urls import open_url
from ganbench.plugins.interfaces import RemoteFile
from ganbench.progress import ByteProgress

CHUNK = 1 << 20
#: Free space a download must leave: room for the filesystem's own blocks and for what
#: is written beside it meanwhile (logs, checkpoints), so a file that just fits does not
#: leave the disk full for everything else.
FREE_MARGIN = 100 << 20


def _hasher(remote: RemoteFile) -> tuple[str, str, hashlib._Hash] | None:
    if remote.sha256:
        return "sha256", remote.sha256.lower(), hashlib.sha256()
    if remote.md5:
        return "md5", remote.md5.lower(), hashlib.md5(usedforsecurity=False)
    return None


def file_digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def check_digest(path: Path, algorithm: str, expected: str, what: str) -> None:
    """Delete ``path`` and raise, naming both digests, unless it hashes to ``expected``."""
    got = file_digest(path, algorithm)
    if got != expected.lower():
        path.unlink(missing_ok=True)
        raise DownloadError(
            f"checksum mismatch for {what}: expected {algorithm} {expected}, got {got};"
            " the download was deleted. Run the command again; if it keeps failing the file"
            " at the source has changed"
        )


def verify(path: Path, remote: RemoteFile) -> bool:
    """True when ``path`` exists and matches the checksum (any file, when none is known)."""
    if not path.is_file():
        return False
    check = _hasher(remote)
    return check is None or file_digest(path, check[0]) == check[1]


def download(
    remote: RemoteFile, folder: Path, *, progress: bool = True, timeout: float = 60.0
) -> Path:
    """``remote`` into ``folder``; returns the verified file (kept if already there)."""
    dest = folder / remote.filename  # a filename may name a sub-folder ("raw/x.gz")
    if verify(dest, remote):
        return dest
    part = dest.with_name(dest.name + ".part")
    local = urllib.parse.urlparse(remote.url).scheme in ("", "file")
    if remote.size is not None:  # before any folder or byte: a file too big fails at once
        have = part.stat().st_size if not local and part.is_file() else 0
        check_free_space(dest.parent, remote.size - min(have, remote.size), remote.filename)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if local:
        _copy_local(remote.url, part)
    else:
        _fetch(remote, part, progress, timeout)
    if remote.size is not None:
        _check_size(part, remote, resumable=not local)
    check = _hasher(remote)
    if check is not None:
        check_digest(part, check[0], check[1], f"{dest.name} from {remote.url}")
    commit_file(part, dest)
    return dest


def check_free_space(folder: Path, size: int, filename: str) -> None:
    """Raise, naming the file, its size and the folder, unless ``size`` bytes and
    :data:`FREE_MARGIN` fit on the disk of ``folder`` (or of its nearest existing parent:
    the folder is not created for a download that cannot happen)."""
    there = Path(folder).absolute()
    while not there.exists() and there != there.parent:
        there = there.parent
    free = shutil.disk_usage(there).free
    if size + FREE_MARGIN > free:
        raise DownloadError(
            f"not enough free space for {filename} ({_size(size)}) in {folder}: {_size(free)}"
            f" free, {_size(size + FREE_MARGIN)} needed with a margin; free some space there"
            " or choose a folder on a larger disk (--cache-dir, --data-root)"
        )


def _size(n: int) -> str:
    """``n`` bytes, exactly and in the largest binary unit under it (for messages)."""
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20)):
        if n >= 1 << shift:
            return f"{n:,} bytes, {n / (1 << shift):.1f} {unit}"
    return f"{n:,} bytes"


def _copy_local(url: str, part: Path) -> None:
    source = Path(urllib.parse.urlparse(url).path if url.startswith("file:") else url)
    if not source.is_file():
        raise DownloadError(f"{source} does not exist; check the path")
    shutil.copyfile(source, part)


def _wrong_size(part: Path, remote: RemoteFile, got: str) -> DownloadError:
    part.unlink(missing_ok=True)
    return DownloadError(
        f"{remote.filename} from {remote.url} has {got} bytes, not the {remote.size}"
        " expected; the copy was deleted. The file at the source is truncated or has"
        " changed: fetch it again or update the index"
    )


def _fetch(remote: RemoteFile, part: Path, progress: bool, timeout: float) -> None:
    have = part.stat().st_size if part.exists() else 0
    limit = remote.size  # None: unknown, no cap
    if limit is not None and have > limit:
        part.unlink()
        have = 0
    request = urllib.request.Request(remote.url, headers={"User-Agent": "ganbench"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = open_url(request, timeout)  # an https -> http redirect raises
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the .part is already complete (or longer): start over
            part.unlink()
            return _fetch(remote, part, progress, timeout)
        raise DownloadError(f"cannot download {remote.url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(
            f"cannot download {remote.url} ({reason}); check the network, or fetch the file"
            f" by hand into {part.parent}"
        ) from None
    with response:
        resumed = have and response.status == 206
        length = response.headers.get("Content-Length")
        if length is not None and not length.strip().isdigit():  # a server may send anything
            length = None
        expected = (int(length) + (have if resumed else 0)) if length else None
        if limit is not None and expected is not None and expected > limit:
            raise _wrong_size(part, remote, f"{expected}")  # said so before sending any
        if limit is None and expected is not None:  # no size declared: the server's
            check_free_space(part.parent, expected - (have if resumed else 0), remote.filename)
        mode = "ab" if resumed else "wb"
        done = have if resumed else 0
        with part.open(mode) as fh, ByteProgress(expected, remote.filename, progress) as bar:
            bar.advance(done)
            try:
                while limit is None or done <= limit:
                    # Never more than one byte past the limit: enough to know it is too long.
                    block = response.read(CHUNK if limit is None else min(CHUNK, limit + 1 - done))
                    if not block:
                        break
                    fh.write(block)
                    done += len(block)
                    bar.advance(len(block))
            except (http.client.IncompleteRead, OSError) as exc:
                raise DownloadError(
                    f"download of {remote.url} broke off after {done} bytes ({exc});"
                    " run the command again to resume"
                ) from None
    if limit is not None and done > limit:
        raise _wrong_size(part, remote, f"more than {limit}")
    if expected is not None and done != expected:
        raise DownloadError(
            f"download of {remote.url} is truncated: got {done} of {expected} bytes;"
            " run the command again to resume"
        )


def _check_size(part: Path, remote: RemoteFile, resumable: bool) -> None:
    """A short download stays as ``.part`` to be resumed; a long one cannot be right."""
    got = part.stat().st_size
    if got < remote.size and resumable:
        raise DownloadError(
            f"download of {remote.url} is truncated: got {got} of {remote.size} bytes;"
            " run the command again to resume"
        )
    if got != remote.size:
        raise _wrong_size(part, remote, f"{got}")
