"""The package's layers read top-down, as DESIGN.md draws the data flow.

cli -> (tune, report) -> orchestrate -> execution -> (jobs, tracking)
    -> (train, evaluation, model, data) -> (store, spec, errors, json_input)

An import may go to its own subpackage or to any layer below, never up; and the subpackages import
each other without circles (two subpackages of one layer may use each other in one direction
only). Every ``import`` in ``ablate/**.py`` counts, inside functions and ``TYPE_CHECKING`` blocks
too: a lazy import hides the cost of a dependency, not the dependency.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from importlib.util import resolve_name
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ablate"

LAYERS: list[tuple[str, ...]] = [
    ("cli",),
    ("tune", "report"),
    ("orchestrate",),
    ("execution",),
    ("jobs", "tracking"),
    ("train", "evaluation", "model", "data"),
    ("store", "spec", "errors", "json_input", "assets"),
]
LAYER_OF = {part: depth for depth, parts in enumerate(LAYERS) for part in parts}


def module_name(path: Path) -> str:
    """``ablate/execution/base.py`` -> ``ablate.execution.base`` (a package: its own name)."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    """Whether ``name`` is a module or package of the (possibly substituted) ``PACKAGE``."""
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def part_of(module: str) -> str | None:
    """The subpackage (or top-level module) ``ablate.<part>...`` lives in; None for ``ablate``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of ``tree`` outside ``if TYPE_CHECKING:`` blocks."""
    nodes, todo = [], [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            todo.extend(node.orelse)
            continue
        nodes.append(node)
        todo.extend(ast.iter_child_nodes(node))
    return nodes


def imports_of(path: Path, *, runtime_only: bool = False) -> set[str]:
    """Every ``ablate`` module ``path`` imports, anywhere in the file (``runtime_only``: not the
    ones under ``if TYPE_CHECKING:``, which never run)."""
    module = module_name(path)
    found = set()
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in _runtime_nodes(tree) if runtime_only else ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                package = module if path.name == "__init__.py" else module.rpartition(".")[0]
                source = resolve_name("." * node.level + (node.module or ""), package)
            else:
                source = node.module or ""
            found.add(source)
            # ``from package import module`` imports that module too
            found.update(
                f"{source}.{alias.name}"
                for alias in node.names
                if is_module(f"{source}.{alias.name}")
            )
    return {name for name in found if name == "ablate" or name.startswith("ablate.")}


def import_graph() -> dict[str, set[str]]:
    """Module -> the ``ablate`` modules it imports."""
    return {module_name(p): imports_of(p) for p in sorted(PACKAGE.rglob("*.py"))}


def upward_imports() -> set[tuple[str, str]]:
    """(importer, imported) pairs where the imported module sits in a higher layer."""
    found = set()
    for module, targets in import_graph().items():
        here = part_of(module)
        for target in targets:
            there = part_of(target)
            if here is None or there is None or here == there:
                continue
            if LAYER_OF[there] < LAYER_OF[here]:
                found.add((module, target))
    return found


def circles_in(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one node (Tarjan's algorithm); edges to nodes
    outside ``graph`` are ignored."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in graph:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                circles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return circles


def subpackage_circles() -> list[list[str]]:
    """Strongly connected groups of more than one subpackage (Tarjan's algorithm)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for module, targets in import_graph().items():
        here = part_of(module)
        for target in targets:
            there = part_of(target)
            if here and there and here != there:
                graph[here].add(there)
    return circles_in(graph)


def test_every_subpackage_has_a_layer():
    parts = {part_of(module_name(p)) for p in PACKAGE.rglob("*.py")} - {None}
    assert parts <= set(LAYER_OF), f"give these a layer in LAYERS: {sorted(parts - set(LAYER_OF))}"


def test_no_import_runs_up_a_layer():
    found = sorted(upward_imports())
    assert not found, "imports that run up a layer:\n" + "\n".join(f"{a} -> {b}" for a, b in found)


def test_no_circles_between_subpackages():
    assert subpackage_circles() == []


def module_circles() -> list[list[str]]:
    """Modules that import each other at run time, directly or through others.

    Annotations under ``TYPE_CHECKING`` never run and a package's own ``__init__`` imported by
    its modules (the registries' plug-in discovery) is not a dependency between files, so neither
    counts here.
    """
    graph = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        graph[module] = {
            target
            for target in imports_of(path, runtime_only=True)
            if not module.startswith(target + ".")
        }
    return circles_in(graph)


def test_no_circles_between_modules():
    assert module_circles() == []


def test_the_checks_see_an_upward_import_and_a_circle(tmp_path, monkeypatch):
    """The walk finds imports inside functions and ``TYPE_CHECKING`` blocks, and closes circles."""
    pkg = tmp_path / "ablate"
    for part, text in {
        "store/low.py": "def f():\n    from ablate.execution.base import Executor\n",
        "store/__init__.py": "from . import low\n",
        "execution/base.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
        "    from ablate.store import low\n",
    }.items():
        (pkg / part).parent.mkdir(parents=True, exist_ok=True)
        (pkg / part).write_text(text)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", pkg)
    assert upward_imports() == {("ablate.store.low", "ablate.execution.base")}
    assert subpackage_circles() == [["execution", "store"]]
    assert module_circles() == []  # the way back is an annotation only
    (pkg / "execution/base.py").write_text("from ablate.store import low\n")
    assert module_circles() == [["ablate.execution.base", "ablate.store", "ablate.store.low"]]
