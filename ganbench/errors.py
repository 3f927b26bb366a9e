"""The errors ganbench raises for the user, each one line that names the problem and the fix.

The CLI turns them into ``Error: ...`` on stderr and an exit code: 2 for a usage error
(something the user asked for that cannot be), 1 for a failure while doing valid work.

May import: nothing of ganbench (and the package root ``ganbench``); tests/test_layers.py
checks it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class GanbenchError(Exception):
    """A failure while doing valid work (exit code 1)."""

    exit_code = 1


class UsageError(GanbenchError):
    """The user asked for something that cannot be: unknown name, bad value (exit code 2)."""

    exit_code = 2


class UnknownNameError(UsageError, KeyError):
    """A name that no plugin registered."""

    def __init__(self, kind: str, name: str, available: Iterable[str]) -> None:
        self.kind, self.name, self.available = kind, name, sorted(available)
        close = difflib.get_close_matches(name, self.available, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        listed = ", ".join(self.available) or "none"
        super().__init__(
            f"unknown {kind} {name!r}.{hint} Available: {listed}"
            f" (`ganbench plugins` shows where each comes from)."
        )

    def __str__(self) -> str:  # KeyError would otherwise quote the whole message
        return str(self.args[0])


class DuplicateNameError(GanbenchError):
    """Two plugins registered the same name: a broken installation, not a user typo."""

    def __init__(self, kind: str, name: str, first: str, second: str) -> None:
        self.kind, self.name, self.first, self.second = kind, name, first, second
        super().__init__(
            f"{kind} {name!r} is registered twice: by plugin {first!r} and by plugin {second!r}."
            f" Uninstall one of them or block it with GANBENCH_DISABLE_PLUGINS={second}."
        )


class ConfigError(UsageError):
    """A hyperparameter that does not exist or a value of the wrong type."""


class TrainingDiverged(GanbenchError):
    """Losses became NaN or infinite: the run cannot continue meaningfully. Its own exit
    code, so that a study records a diverged trial as a result, not as a crash."""

    exit_code = 3


class TrackingError(GanbenchError):
    """The MLflow tracking store cannot be reached or written."""


class CheckpointError(GanbenchError):
    """A checkpoint or generator file is missing, truncated or not ours."""


class NothingToResume(CheckpointError):
    """The run stopped before its first checkpoint: it can only be started again (a
    study does so for its trials; its own exit code tells it apart from a broken one)."""

    exit_code = 4


class DatasetNotFoundError(GanbenchError):
    """A dataset's files are not where they should be (or not laid out as expected)."""


class BadImageError(GanbenchError):
    """An image that cannot be decoded: names the file (or LMDB key) and why."""

    def __init__(self, where: str, reason: str) -> None:
        self.where, self.reason = where, reason
        super().__init__(f"cannot decode {where}: {reason}")


class Stopped(GanbenchError):
    """Work stopped on request by a signal (SIGTERM, Ctrl-C), with what was kept and how to
    continue in its message: exit code 128 + the signal, as a shell reports a process that
    the signal killed, but the line is news rather than an error."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum

    def __reduce__(self) -> tuple:
        return (type(self), (self.signum, str(self)))


class DownloadError(GanbenchError):
    """A download failed, was truncated or did not match its checksum (nothing was kept)."""


class ZooError(GanbenchError):
    """A zoo file or index is missing, corrupt, unverifiable or not one of ours."""


class UnknownModelError(UsageError, KeyError):
    """A generator name the zoo index does not list."""

    def __init__(self, name: str, available: Iterable[str], index: str) -> None:
        available = sorted(available)
        close = difflib.get_close_matches(name, available, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        listed = ", ".join(available) or "none"
        super().__init__(
            f"no generator {name!r} in the zoo index {index}.{hint} Available: {listed}"
            " (`ganbench zoo list`)."
        )

    def __str__(self) -> str:
        return str(self.args[0])
