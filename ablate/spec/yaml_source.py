"""Safe YAML loading that remembers where every key was written.

Errors must name the line of the offending key, so besides the data we keep a map from the key path
(a tuple of keys and list indices) to its 1-based line. Only ``yaml.SafeLoader`` is used: a sweep
file can never construct Python objects. Duplicate keys, which YAML silently collapses, are errors.

Aliases are bounded before anything walks the document: nine levels of nine aliases fit in 600
bytes and stand for 9^9 values, which every later walk (the line map, merging, validation) would
expand. A document may use at most :data:`MAX_ALIASES` aliases, nested at most
:data:`MAX_ALIAS_DEPTH` deep (an alias of a node that holds aliases is depth 2), and expand to at
most :data:`MAX_EXPANDED_NODES` values; past that it is refused naming the alias's line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ablate.errors import SpecError

KeyPath = tuple[Any, ...]

MAX_ALIASES = 100
MAX_ALIAS_DEPTH = 3
MAX_EXPANDED_NODES = 100_000


@dataclass(frozen=True)
class YamlSource:
    """A loaded YAML document with the line of every key.

    Attributes:
        path: the file it came from.
        data: the parsed document (plain dicts, lists and scalars).
        lines: key path -> 1-based line of that key (or list item).
    """

    path: Path
    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def line_of(self, keypath: KeyPath) -> int | None:
        """Line of ``keypath`` or of its closest recorded ancestor."""
        for end in range(len(keypath), -1, -1):
            line = self.lines.get(tuple(keypath[:end]))
            if line is not None:
                return line
        return None


def _check_aliases(root: yaml.Node, alias_lines: list[int], file: Path) -> None:
    """Refuse a document whose aliases are too many, too deeply nested or expand too far.

    Each node is visited once (memoised by identity): a node met again is an alias (the composer
    shares the anchor's node), met in the order of ``alias_lines``. Its expanded size and alias
    depth come from the memo, so the check costs the document's size, not its expansion.

    Raises:
        SpecError: naming the line of the alias that crosses a bound.
    """
    sizes: dict[int, tuple[int, int]] = {}  # node id -> (expanded values, alias depth)
    aliases = 0

    def visit(node: yaml.Node) -> tuple[int, int]:
        nonlocal aliases
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        size, depth = 1, 0
        for child in children:
            if id(child) in sizes:  # met before: this occurrence is an alias
                aliases += 1
                child_size, child_depth = sizes[id(child)]
                child_depth += 1
                line = alias_lines[min(aliases, len(alias_lines)) - 1]
                if aliases > MAX_ALIASES:
                    raise SpecError(
                        f"more than {MAX_ALIASES} YAML aliases (*name): refused",
                        file=file,
                        line=line,
                    )
                if child_depth > MAX_ALIAS_DEPTH:
                    raise SpecError(
                        f"YAML aliases nested more than {MAX_ALIAS_DEPTH} deep "
                        "(an alias of an anchor that holds aliases): refused",
                        file=file,
                        line=line,
                    )
            else:
                child_size, child_depth = visit(child)
            size += child_size
            depth = max(depth, child_depth)
            if size > MAX_EXPANDED_NODES:
                raise SpecError(
                    f"YAML aliases expand the document past {MAX_EXPANDED_NODES} values: refused",
                    file=file,
                    line=child.start_mark.line + 1,
                )
        sizes[id(node)] = (size, depth)
        return size, depth

    visit(root)


class _Loader(yaml.SafeLoader):
    """The safe loader, noting the line of every alias (``*name``) in document order."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.alias_lines: list[int] = []

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            self.alias_lines.append(self.peek_event().start_mark.line + 1)
        return super().compose_node(parent, index)


def _walk(
    node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int], file: Path, seen_nodes: set[int]
) -> None:
    if id(node) in seen_nodes:  # an alias: its keys were recorded where the anchor is
        return
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
        seen_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise SpecError(
                    f"duplicate key {key!r} (first written on line {seen[key]})",
                    file=file,
                    line=line,
                    key=".".join(str(p) for p in (*path, key)),
                )
            seen[key] = line
            lines[(*path, key)] = line
            _walk(value_node, (*path, key), lines, file, seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1
            _walk(item, (*path, index), lines, file, seen_nodes)


def load_yaml(path: Path) -> YamlSource:
    """Load ``path`` safely, with line numbers for every key.

    Raises:
        SpecError: the file is missing, unreadable, not valid YAML, or has duplicate keys.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError("file not found", file=path) from None
    except (OSError, UnicodeDecodeError) as err:
        raise SpecError(f"cannot read file: {err}", file=path) from None
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            if node is not None:
                _check_aliases(node, loader.alias_lines, path)
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except RecursionError:
        raise SpecError("invalid YAML: nested too deeply to read", file=path) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise SpecError(f"invalid YAML: {problem}", file=path, line=line) from None
    lines: dict[KeyPath, int] = {}
    if node is not None:
        try:
            _walk(node, (), lines, path, set())
        except RecursionError:
            raise SpecError("invalid YAML: nested too deeply to read", file=path) from None
    return YamlSource(path=path, data=data, lines=lines)
