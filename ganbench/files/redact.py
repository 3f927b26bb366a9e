"""Store and storage URLs as they may be shown: without their passwords.

A team's MLflow store or Optuna storage is often a ``postgresql://user:PASSWORD@host/db``
URL (or an ``https://user:PASSWORD@...`` server); every line, param, tag and report that
names one shows it through :func:`safe_uri`. The real URL stays where it is needed to
connect (the run folder's run.json, which resume and sync read).
"""

from __future__ import annotations

import urllib.parse

#: What stands for a password.
HIDDEN = "***"


def safe_uri(uri: str) -> str:
    """``uri`` with its password replaced by ``***`` (unchanged when it has none)."""
    try:
        parts = urllib.parse.urlsplit(uri)
        password = parts.password
    except ValueError:  # an unparseable netloc: keep only what follows the last "@"
        return uri.rsplit("@", 1)[-1] if "@" in uri else uri
    if not password:
        return uri
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:{HIDDEN}@{hostinfo}"))
