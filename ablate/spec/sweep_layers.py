"""A sweep file and the files it ``extends``, merged into one document that remembers its sources.

Every value keeps where it was written (file and line), so an error in a value the user wrote is
blamed on the user's file even when the key was first set in ``sweeps/_paper.yaml``. The document
is validated section by section (:class:`~ablate.spec.sweep_document.SweepDocument`) as each file
is read; :mod:`ablate.spec.sweep` expands the merged document into runs.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablate.errors import SpecError
from ablate.spec.dotted import set_dotted
from ablate.spec.sweep_document import SweepDocument
from ablate.spec.validation import error_at, source_locator, validate
from ablate.spec.yaml_source import KeyPath, YamlSource, load_yaml

SWEEP_KEYS = tuple(SweepDocument.model_fields)
Origin = tuple[str, int | None]
"""Where a value was written: (file, line)."""


@dataclass
class SweepLayers:
    """The merged sweep document and where each piece came from."""

    doc: dict[str, Any] = field(default_factory=dict)
    base_origin: dict[str, Origin] = field(default_factory=dict)  # flattened base key -> origin
    section_source: dict[str, YamlSource] = field(default_factory=dict)  # top key -> its file


def nested_base(src: YamlSource, base: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Origin]]:
    """``base`` with dotted keys (``train.lr: 0.01``) set as one field each, and their origins.

    A dotted key sets one field, as in a point; a plain key's mapping is merged field by field
    over the extended files' base. The origins map every dotted prefix to the line that wrote it
    (the leaf's own line when written twice).

    Raises:
        SpecError: a dotted key goes through a value that is not a mapping (``train: 5`` and
            ``train.lr: 1``), naming its line.
    """
    nested: dict[str, Any] = {}
    origins: dict[str, Origin] = {}

    def walk(tree: dict[str, Any], raw: KeyPath, parts: list[str]) -> None:
        for key, value in tree.items():
            here = [*parts, *str(key).split(".")]
            origin = (str(src.path), src.line_of((*raw, key)))
            for end in range(len(parts) + 1, len(here)):
                origins.setdefault(".".join(here[:end]), origin)
            origins[".".join(here)] = origin
            if isinstance(value, dict) and value:
                walk(value, (*raw, key), here)
                continue
            try:
                set_dotted(nested, ".".join(here), value)
            except TypeError as err:
                key_text = ".".join(here)
                raise SpecError(str(err), file=src.path, line=origin[1], key=key_text) from None

    walk(base, ("base",), [])
    return nested, origins


def load_layers(path: Path, stack: tuple[Path, ...] = ()) -> SweepLayers:
    """Load ``path`` and the files it ``extends`` (depth first), merged; child keys win.

    Raises:
        SpecError: a file that is not a sweep mapping, a section of the wrong type, a missing
            extended file, or an ``extends`` cycle, each naming file and line.
    """
    resolved = path.resolve()
    if resolved in stack:
        chain = " -> ".join(p.name for p in (*stack, resolved))
        raise SpecError(f"extends forms a cycle: {chain}", file=path)
    src = load_yaml(path)
    data = src.data if src.data is not None else {}
    if not isinstance(data, dict):
        raise SpecError(
            "a sweep file must be a mapping of keys such as base, grid, runs",
            file=path,
            line=1,
            allowed=SWEEP_KEYS,
        )
    document = validate(SweepDocument, data, file=path, locate=source_locator(src))
    merged = SweepLayers()
    parents = document.extends
    for index, parent in enumerate(parents):
        parent_path = path.parent / parent
        if not parent_path.is_file():
            raise error_at(
                src,
                ("extends", index) if len(parents) > 1 else ("extends",),
                f"extended file not found: {parent_path}",
                show_value=False,
            )
        layer = load_layers(parent_path, (*stack, resolved))
        merge_layer(merged, layer)
    own = SweepLayers(doc=copy.deepcopy(data), section_source={k: src for k in data})
    if data.get("base"):
        own.doc["base"], own.base_origin = nested_base(src, data["base"])
    merge_layer(merged, own)
    return merged


def deep_merge(into: dict[str, Any], over: dict[str, Any]) -> None:
    """Merge ``over`` into ``into`` mapping by mapping; other values are replaced (copied)."""
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            deep_merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


def merge_layer(into: SweepLayers, layer: SweepLayers) -> None:
    """Lay ``layer`` over ``into``: ``base`` and ``scales`` merge field by field, others replace."""
    for key, value in layer.doc.items():
        if key == "extends":
            continue
        if key in ("base", "scales") and isinstance(value, dict):
            into.doc.setdefault(key, {})
            deep_merge(into.doc[key], value)
        else:
            into.doc[key] = copy.deepcopy(value)
        into.section_source[key] = layer.section_source[key]
    into.base_origin.update(layer.base_origin)
