"""mkdocs hook: a command's examples read on the site as they read in the terminal.

click keeps the lines of a paragraph marked ``\\b`` as they are, so ``Example:`` and the
indented commands under it print one per line in ``--help``. mkdocs-click passes the help
text on as Markdown and drops the ``\\b`` markers, so Markdown joined those lines into one.
mkdocs-click has no option for this; a Markdown preprocessor run just after its own
(priority 141) fences the indented lines under an ``Example:`` / ``Examples (...):`` line.
"""

from __future__ import annotations

import re

from markdown import Extension, Markdown
from markdown.preprocessors import Preprocessor

EXAMPLE_HEADING = re.compile(r"^Examples?\b.*:$")
FENCE = re.compile(r"^\s*(```|~~~)")


def fence_examples(lines: list[str]) -> list[str]:
    """The indented lines under each example heading (outside code fences), fenced."""
    out: list[str] = []
    in_fence = False
    i = 0
    while i < len(lines):
        line = lines[i]
        out.append(line)
        i += 1
        if FENCE.match(line):
            in_fence = not in_fence
        if in_fence or not EXAMPLE_HEADING.match(line):
            continue
        end = i
        while end < len(lines) and lines[end].startswith("  ") and lines[end].strip():
            end += 1
        if end > i:
            block = lines[i:end]
            indent = min(len(b) - len(b.lstrip()) for b in block)
            out.extend(["", "```bash", *(b[indent:] for b in block), "```", ""])
            i = end
    return out


class _FenceExamples(Preprocessor):
    def run(self, lines: list[str]) -> list[str]:
        return fence_examples(lines)


class FenceExamplesExtension(Extension):
    def extendMarkdown(self, md: Markdown) -> None:
        md.preprocessors.register(_FenceExamples(md), "ganbench_fence_examples", 140)


def on_config(config):
    """Add the extension to the Markdown that every page is converted with."""
    config.markdown_extensions.append(FenceExamplesExtension())
    return config
