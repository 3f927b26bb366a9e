"""The house's layout holds: every module imports only from the layers its package's
docstring allows (``May import: ...``, read here), the core never imports a built-in
plugin, no two modules import each other (a deferred import inside a function counts;
imports under ``if TYPE_CHECKING:`` do not run and do not count), and no source file
outgrows a screen-sized module. Read from the source's AST, nothing is imported."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "ganbench"
PLUGINS = ROOT / "ganbench_plugins"
MAX_LINES = 450
ALWAYS = {"ganbench", "ganbench._moved"}  # the package root (its version) and the shims' helper


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(folder: Path) -> dict[str, Path]:
    return {module_name(p): p for p in sorted(folder.rglob("*.py"))}


ALL = {**modules(CORE), **modules(PLUGINS)}


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skipped.update(id(n) for n in ast.walk(child))
    return skipped


def imported_modules(name: str, path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) for every import that runs, resolved to the deepest module that
    exists (``from a import b`` is ``a.b`` where that is a module, else ``a``)."""
    tree = ast.parse(path.read_text())
    skipped = _type_checking_nodes(tree)
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join([*package, *([base] if base else [])])
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in ALL else base for a in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in ALL and target not in ("ganbench", "ganbench_plugins"):
                target = target.rpartition(".")[0]
            if target:
                yield node.lineno, target


def layer_of(module: str) -> str:
    """``ganbench.X`` for a module of the core (the package or top-level module it is in)."""
    return ".".join(module.split(".")[:2])


def declared(layer: str) -> tuple[str, set[str] | None]:
    """(the declaring file, the layers it allows; None = every layer but ganbench.testing)."""
    path = ALL[layer]
    doc = " ".join((ast.get_docstring(ast.parse(path.read_text())) or "").split())
    found = re.search(r"May import:(.*?)\(and the package root", doc)
    assert found, f"{path.relative_to(ROOT)}: its docstring has no 'May import: ...' line"
    text = found.group(1).strip()
    if text.startswith("every package of ganbench but"):
        return str(path), None
    return str(path), set(re.findall(r"ganbench\.[a-z_]+", text))


def is_shim(path: Path) -> bool:
    return (ast.get_docstring(ast.parse(path.read_text())) or "").startswith("Moved to")


CORE_MODULES = [m for m, p in modules(CORE).items() if m != "ganbench" and not is_shim(p)]


@pytest.mark.parametrize("module", CORE_MODULES)
def test_a_module_imports_only_the_layers_its_package_allows(module):
    layer = layer_of(module)
    where, allowed = declared(layer)
    wrong = []
    for line, target in imported_modules(module, ALL[module]):
        if target.startswith("ganbench_plugins"):
            wrong.append(f"line {line}: {target} (the core never imports a plugin)")
            continue
        if not target.startswith("ganbench") or target in ALWAYS:
            continue
        other = layer_of(target)
        if other == layer:
            continue
        if allowed is None and other != "ganbench.testing":
            continue
        if allowed is None or other not in allowed:
            wrong.append(f"line {line}: {target}")
    assert not wrong, f"{module} imports what {where} does not allow: {wrong}"


def test_the_layer_check_sees_a_forbidden_import(tmp_path):
    """The checker itself: an import of a higher layer, and one hidden in a function body,
    are found; one under TYPE_CHECKING is not."""
    fake = tmp_path / "fake.py"
    fake.write_text(
        "from typing import TYPE_CHECKING\n"
        "import ganbench.errors\n"
        "if TYPE_CHECKING:\n    from ganbench.cli import app\n"
        "def f():\n    from ganbench.training import runner\n"
    )
    found = [t for _, t in imported_modules("ganbench.files.fake", fake)]
    assert found == ["ganbench.errors", "ganbench.training.runner"]


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iteratively (the graph has ~300 nodes)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_two_modules_import_each_other():
    graph = {
        name: {t for _, t in imported_modules(name, path) if t in ALL and t != name}
        for name, path in ALL.items()
    }
    assert strongly_connected(graph) == []
    # ...and the search does find a cycle where there is one
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("path", sorted([*CORE.rglob("*.py"), *PLUGINS.rglob("*.py")]), ids=str)
def test_no_source_file_passes_450_lines(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines: split it along a seam"
