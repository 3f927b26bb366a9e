"""The documentation site: it builds in strict mode, and it keeps up with the code.

The site is built once (``mkdocs build --strict``, as ``make docs`` does) into a temporary
folder. A command added to the CLI without a page, a page naming a command that is gone, a
hookspec without a docstring, a README that grew back into the manual or a relative link
to a file that moved fails here.
"""

from __future__ import annotations

import importlib
import importlib.resources
import inspect
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from ganbench.cli import cli

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CLI_DOCS = DOCS / "cli"
README = ROOT / "README.md"
README_MAX_LINES = 250
INTERFACES = "ganbench.plugins.interfaces"

#: ``::: mkdocs-click`` and the indented ``:option: value`` lines that follow it.
CLICK_BLOCK = re.compile(r"^::: mkdocs-click[ \t]*\n((?:[ \t]+:\w+:.*\n?)+)", re.MULTILINE)
CLICK_OPTION = re.compile(r"^[ \t]+:(\w+):[ \t]*(.*?)[ \t]*$", re.MULTILINE)
#: Inline links and images: ``[text](target)``, ``![alt](target "title")``.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^([ \t]*)(```|~~~).*?^\1\2[ \t]*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")


def hookspecs_module():
    """The module the hookspecs live in: the plugin package's, or the old path."""
    try:
        return importlib.import_module("ganbench.plugins.hookspecs")
    except ImportError:
        return importlib.import_module("ganbench.hookspecs")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site, built as ``make docs`` builds it (strict: any warning is an error)."""
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        print(done.stdout)
        print(done.stderr)
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stderr[-6000:]}"
    return out


def page_html(site: Path, page: str) -> str:
    """The built HTML of ``page`` (a path under docs/ without .md, directory URLs)."""
    path = site / page / "index.html" if page != "index" else site / "index.html"
    assert path.is_file(), f"{page}.md was not built to {path.relative_to(site)}"
    return path.read_text(encoding="utf-8")


def click_blocks(text: str) -> list[dict[str, str]]:
    return [dict(CLICK_OPTION.findall(m.group(1))) for m in CLICK_BLOCK.finditer(text)]


def relative_links(markdown: str) -> list[str]:
    """Link and image targets that point into the repository (no URL, no bare anchor),
    outside code blocks and inline code."""
    text = INLINE_CODE.sub("", FENCE.sub("", markdown))
    targets = []
    for target in LINK.findall(text):
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith(("#", "//")):
            continue
        targets.append(target)
    return targets


def test_the_site_builds_in_strict_mode(site):
    for page in (
        "index.html",
        "getting-started/index.html",
        "concepts/runs/index.html",
        "concepts/studies/index.html",
        "cli/index.html",
        "cli/run/index.html",
        "plugin-guide/index.html",
        "reference/hooks/index.html",
        "reference/interfaces/index.html",
        "benchmarks/index.html",
        "changelog/index.html",
        "search/search_index.json",
    ):
        assert (site / page).is_file(), page
    # Figures that pages embed are copied with the site.
    assert (site / "digits_samples.png").is_file()
    assert (site / "gans-created-equal-digits" / "search" / "budget.png").is_file()
    # The benchmarks page includes benchmarks/README.md, the suite's results file.
    assert "Reading the CPU numbers against the goals" in page_html(site, "benchmarks")


def test_every_command_has_a_page_rendered_from_it(site):
    commands = cli.commands
    assert commands, "the CLI root has no commands"
    pages = {p.stem for p in CLI_DOCS.glob("*.md")} - {"index"}
    assert pages == set(commands), (
        f"docs/cli/ pages without a command: {sorted(pages - set(commands))};"
        f" commands without a page: {sorted(set(commands) - pages)}"
    )
    for name, command in commands.items():
        blocks = click_blocks((CLI_DOCS / f"{name}.md").read_text(encoding="utf-8"))
        assert len(blocks) == 1, f"docs/cli/{name}.md needs one `::: mkdocs-click` block"
        [options] = blocks
        module = importlib.import_module(options["module"])
        assert getattr(module, options["command"], None) is command, (
            f"docs/cli/{name}.md renders {options['module']}:{options['command']},"
            f" which is not the `ganbench {name}` command"
        )
        assert options.get("prog_name") == f"ganbench {name}", name
        html = page_html(site, f"cli/{name}")
        assert f"ganbench {name}" in html
        for option in command.params:
            if isinstance(option, click.Option) and not option.hidden:
                assert option.opts[0] in html, f"{name}: option {option.opts[0]} not on its page"
        if isinstance(command, click.Group):
            assert command.commands, name
            for sub in command.commands:
                assert f"ganbench {name} {sub}" in html, f"`ganbench {name} {sub}` not on its page"


def _walk(command: click.Command, prefix: str):
    yield prefix, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _walk(sub, f"{prefix} {name}")


def test_every_help_example_is_a_code_block_on_its_page(site):
    """``Example:`` lines print one per line in --help; on the site they must not run
    together into a paragraph (mkdocs-click drops click's ``\\b`` markers)."""
    code = re.compile(r"<pre><span></span><code>(.*?)</code></pre>", re.DOTALL)
    tags = re.compile(r"<[^>]+>")
    seen = 0
    for name, top in cli.commands.items():
        blocks = [
            tags.sub("", block).replace("&quot;", '"').replace("&amp;", "&")
            for block in code.findall(page_html(site, f"cli/{name}"))
        ]
        for prog, command in _walk(top, f"ganbench {name}"):
            lines = inspect.cleandoc(command.help or "").splitlines()
            for i, line in enumerate(lines):
                if not re.match(r"^Examples?\b.*:$", line):
                    continue
                examples = [x.strip() for x in lines[i + 1 :] if x.startswith("  ")]
                assert examples, f"{prog}: an example heading without examples"
                for example in examples:
                    seen += 1
                    assert any(example in map(str.strip, b.splitlines()) for b in blocks), (
                        f"{prog}: example {example!r} is not a line of a code block"
                    )
    assert seen >= 10, seen


def test_fence_examples_leaves_fences_and_lists_alone():
    sys.path.insert(0, str(DOCS / "hooks"))
    try:
        from click_blocks import fence_examples
    finally:
        sys.path.remove(str(DOCS / "hooks"))
    page = ["Prose.", "Example:", "  ganbench a", "  ganbench b", "", "- list:", "  more"]
    assert fence_examples(page) == [
        "Prose.",
        "Example:",
        "",
        "```bash",
        "ganbench a",
        "ganbench b",
        "```",
        "",
        "",
        "- list:",
        "  more",
    ]
    fenced = ["```", "Example:", "  inside a fence", "```"]
    assert fence_examples(fenced) == fenced


def test_every_hookspec_is_documented_in_the_reference(site):
    module = hookspecs_module()
    specs = {
        name: function
        for name, function in inspect.getmembers(module, inspect.isfunction)
        if name.startswith("ganbench_") and function.__module__ == module.__name__
    }
    assert len(specs) >= 5, sorted(specs)
    html = page_html(site, "reference/hooks")
    for name, function in specs.items():
        assert inspect.getdoc(function), f"hookspec {name} has no docstring"
        assert f'id="{module.__name__}.{name}"' in html, f"{name} is not in reference/hooks"


def test_every_interface_is_documented_in_the_reference(site):
    """One block per module of the interfaces package (or the package itself while it is
    one module), and every name plugins import from it on the page."""
    package = importlib.import_module(INTERFACES)
    html = page_html(site, "reference/interfaces")
    submodules = [m.name for m in pkgutil.iter_modules(getattr(package, "__path__", []))]
    for module in [f"{INTERFACES}.{name}" for name in submodules] or [INTERFACES]:
        assert f'id="{module}"' in html, f"{module} is not in reference/interfaces"
    for name in package.__all__:
        defined_in = getattr(package, name).__module__
        assert f'id="{defined_in}.{name}"' in html, f"{name} is not in reference/interfaces"


def test_the_zoo_pages_show_the_shipped_generator():
    """docs/zoo/ holds a copy of the shipped grid (the model card page includes the card
    itself from ganbench_zoo): a re-exported generator needs its picture copied again."""
    shipped = importlib.resources.files("ganbench_zoo") / "dcgan-digits-32.png"
    assert (DOCS / "zoo" / "dcgan-digits-32.png").read_bytes() == shipped.read_bytes()


def test_the_readme_is_a_front_door():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) < README_MAX_LINES, f"README.md has {len(lines)} lines"


@pytest.mark.parametrize(
    "document",
    [README, *sorted(DOCS.rglob("*.md"))],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_relative_links_point_to_files(document: Path):
    missing = []
    for target in relative_links(document.read_text(encoding="utf-8")):
        path = target.split("#", 1)[0].split("?", 1)[0]
        if path and not (document.parent / path).exists():
            missing.append(target)
    assert not missing, f"{document.relative_to(ROOT)} links to missing files: {missing}"
