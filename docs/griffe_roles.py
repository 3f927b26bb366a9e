"""A griffe extension for the documentation site (mkdocs.yml loads it): ganbench's
docstrings cross-reference with Sphinx roles (``:class:`Architecture```), which the
Markdown renderer would show verbatim; each becomes inline code (``Architecture``).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

#: ``:class:`x```, ``:py:meth:`~a.b.c```; a leading ``~`` shows the last part only.
ROLE = re.compile(r":(?:py:)?(?:class|meth|func|attr|mod|data|exc|obj|const):`(~?)([^`]+)`")


def plain(text: str) -> str:
    return ROLE.sub(lambda m: f"`{m[2].rsplit('.', 1)[-1] if m[1] else m[2]}`", text)


class SphinxRolesAsCode(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = plain(obj.docstring.value)
