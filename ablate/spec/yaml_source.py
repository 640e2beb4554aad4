"""Safe YAML loading that remembers where every key was written.

Errors must name the line of the offending key, so besides the data we keep a map from the key path
(a tuple of keys and list indices) to its 1-based line. Only ``yaml.SafeLoader`` is used: a sweep
file can never construct Python objects. Duplicate keys, which YAML silently collapses, are errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ablate.errors import SpecError

KeyPath = tuple[Any, ...]


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


def _walk(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int], file: Path) -> None:
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
            _walk(value_node, (*path, key), lines, file)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1
            _walk(item, (*path, index), lines, file)


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
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
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
            _walk(node, (), lines, path)
        except RecursionError:
            raise SpecError("invalid YAML: nested too deeply to read", file=path) from None
    return YamlSource(path=path, data=data, lines=lines)
