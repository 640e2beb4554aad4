"""Dotted keys (``adapter.dim``) over nested dicts: get, set, flatten.

Sweep axes address spec fields by dotted path; these helpers are the one place that knows how.
"""

from __future__ import annotations

from typing import Any


def copy_tree(tree: Any) -> Any:
    """Copy nested dicts and lists (leaves shared): a fast ``deepcopy`` for YAML/JSON data."""
    if isinstance(tree, dict):
        return {k: copy_tree(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [copy_tree(v) for v in tree]
    return tree


def set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``tree[a][b][c] = value`` for ``dotted = "a.b.c"``, creating mappings on the way.

    Raises:
        TypeError: an intermediate key holds a non-mapping value (message names the key).
    """
    parts = dotted.split(".")
    node = tree
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            where = ".".join(parts[: depth + 1])
            raise TypeError(
                f"{where!r} holds {child!r}, not a mapping, so {dotted!r} cannot be set"
            )
        node = child
    node[parts[-1]] = copy_tree(value)


def get_dotted(tree: dict[str, Any], dotted: str, default: Any = None) -> Any:
    """``tree[a][b][c]`` for ``"a.b.c"``, or ``default`` when any part is missing."""
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dict -> ``{"a.b.c": leaf}``; lists stay leaves."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out
