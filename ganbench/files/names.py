"""Names that become folder names: one safe path component, or refused.

A zoo generator's name is its folder in the cache, a study's name is
``CACHE/studies/NAME``; both come from files anyone may write (an index, a study file) or
from the command line. ``pathlib`` joins ``/tmp/x`` or ``../x`` as paths, so a name is
checked against a pattern that cannot express one: letters, digits, ``.``, ``_`` and
``-``, starting with a letter or digit (so never ``.``, ``..`` or a hidden name).
"""

from __future__ import annotations

import re

from ganbench.errors import UsageError

#: Upper and lower case: study names are shown in reports and MLflow as they are written.
SAFE_NAME = "^[A-Za-z0-9][A-Za-z0-9._-]*$"
#: Zoo names are lower case: they are also ONNX file names and registry model names.
LOWER_NAME = "^[a-z0-9][a-z0-9._-]*$"
#: Far below any filesystem's 255-byte limit on one component, with room for suffixes.
MAX_NAME = 100


def check_folder_name(
    name: str, what: str, example: str, *, pattern: str = SAFE_NAME, error: type = UsageError
) -> str:
    """``name`` when it is one safe path component (``pattern``, at most
    :data:`MAX_NAME` characters); else ``error`` in one line naming ``what`` it is, the
    characters allowed and an ``example``."""
    if re.fullmatch(pattern, name) and len(name) <= MAX_NAME:
        return name
    case = "lower-case letters" if pattern == LOWER_NAME else "letters"
    raise error(
        f"{what} {name!r} is not allowed: it names a folder, so use only {case}, digits,"
        f" '.', '_' and '-', starting with a letter or digit, at most {MAX_NAME} characters"
        f" (e.g. {example})"
    )
