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


def part_of(module: str) -> str | None:
    """The subpackage (or top-level module) ``ablate.<part>...`` lives in; None for ``ablate``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def imports_of(path: Path) -> set[str]:
    """Every ``ablate`` module ``path`` imports, anywhere in the file."""
    module = module_name(path)
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                package = module if path.name == "__init__.py" else module.rpartition(".")[0]
                found.add(resolve_name("." * node.level + (node.module or ""), package))
            elif node.module:
                found.add(node.module)
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


def subpackage_circles() -> list[list[str]]:
    """Strongly connected groups of more than one subpackage (Tarjan's algorithm)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for module, targets in import_graph().items():
        here = part_of(module)
        for target in targets:
            there = part_of(target)
            if here and there and here != there:
                graph[here].add(there)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
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


def test_every_subpackage_has_a_layer():
    parts = {part_of(module_name(p)) for p in PACKAGE.rglob("*.py")} - {None}
    assert parts <= set(LAYER_OF), f"give these a layer in LAYERS: {sorted(parts - set(LAYER_OF))}"


def test_no_import_runs_up_a_layer():
    found = sorted(upward_imports())
    assert not found, "imports that run up a layer:\n" + "\n".join(f"{a} -> {b}" for a, b in found)


def test_no_circles_between_subpackages():
    assert subpackage_circles() == []


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
