"""Opening URLs without following an https address to plain http.

urllib follows a redirect from https to http silently, so a server (or whoever answers
for it) could move a download, or a zoo index whose sha256s every download is checked
against, off TLS without the user ever seeing a plain-http URL; the plain-http warning
of ``zoo`` would be skipped. Every fetch of ganbench goes through :func:`open_url`, whose
opener refuses such a redirect in one line. The check lives in urllib's own hook,
:meth:`urllib.request.HTTPRedirectHandler.redirect_request`, which sees every hop of a
chain, so ``https -> https -> http`` is refused too.
"""

from __future__ import annotations

import urllib.parse
import urllib.request
from email.message import Message
from typing import IO, Any

from ganbench.errors import DownloadError


class RedirectDowngrade(DownloadError):
    """An https URL redirected to a URL that is not https."""


def _shown(url: str) -> str:
    """A URL from a server's Location header, safe to print on one terminal line."""
    text = "".join(c if c.isprintable() else "?" for c in url)
    return text if len(text) <= 300 else text[:300] + "..."


class NoDowngradeRedirects(urllib.request.HTTPRedirectHandler):
    """urllib's redirect handling (limits, loop detection), minus https -> anything else."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: Message,
        newurl: str,
    ) -> urllib.request.Request | None:
        old = urllib.parse.urlparse(req.full_url).scheme.lower()
        new = urllib.parse.urlparse(newurl).scheme.lower()  # already made absolute by urllib
        if old == "https" and new != "https":
            fp.close()
            raise RedirectDowngrade(
                f"{_shown(req.full_url)} redirects (HTTP {code}) to {_shown(newurl)}, from"
                f" https to plain {new or 'an unknown scheme'}: refused, since whoever can"
                " change plain http on the way could change what is fetched; ask the"
                " server's owner to redirect to https, or give the http URL yourself"
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def open_url(request: urllib.request.Request | str, timeout: float) -> Any:
    """``urllib.request.urlopen`` with :class:`NoDowngradeRedirects`: HTTP errors raise
    ``urllib.error.HTTPError`` as usual, a downgrading redirect :class:`RedirectDowngrade`
    (a :class:`~ganbench.errors.DownloadError`, not an ``OSError``: no caller mistakes it
    for the network being away). Certificates are checked as by ``urlopen`` (the system's
    CAs, or ``$SSL_CERT_FILE``)."""
    opener = urllib.request.build_opener(NoDowngradeRedirects())
    return opener.open(request, timeout=timeout)
