"""Sweep files: a base run spec plus axes, expanded into validated, identified runs.

A sweep YAML has these top-level keys (all optional except that something must name a ``job``)::

    name: table3                 # default: the file name without .yaml
    description: free text
    extends: _base.yaml          # or a list; paths relative to this file; child keys win
    base: {job: mmt, model: {...}, ...}     # deep-merged over the extended files' base
    runs:                        # explicit points (rows), each merged onto base
      - {label: 7B-lite-clip, model.llm: llama-7b, adapter: {name: router, dim: 8}}
    grid: {adapter.dim: [4, 8], adapter.groups: [2, 4]}     # cartesian product
    zip: [{model.llm: [a, b], model.vision: [c, d]}]        # keys that vary together
    exclude: [{adapter.dim: 32, adapter.groups: 4}]         # drop matching points
    include: [{adapter.dim: 64}]                            # extra points, added after exclude
    seeds: [0, 1, 2]                                        # repeat every point per seed
    scales: {tiny: {train.epochs: 2}}                       # overrides applied by --scale NAME
    report: {spec: ../reports/table3.yaml}                  # read by `ablate report`
    search: {...}                                           # read by `ablate tune` (Optuna space)

Point semantics: points = runs x grid x zip (missing parts count as one empty point); a dotted key
sets one leaf; a plain key (``adapter: {...}``) replaces that whole section, so switching an adapter
kind never inherits the base adapter's fields. Later wins: runs < grid < zip.
"""

from __future__ import annotations

import copy
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablate.errors import SpecError, did_you_mean
from ablate.jobs.registry import get_job
from ablate.spec.dotted import copy_tree, flatten, get_dotted, set_dotted
from ablate.spec.run_spec import RunSpec, build_run_spec
from ablate.spec.yaml_source import KeyPath, YamlSource, load_yaml

SWEEP_KEYS = (
    "name",
    "description",
    "extends",
    "base",
    "runs",
    "grid",
    "zip",
    "exclude",
    "include",
    "seeds",
    "scales",
    "report",
    "search",
)
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")
POINT_META_KEYS = ("label",)
Origin = tuple[str, int | None]


@dataclass(frozen=True)
class PlannedRun:
    """One point of a sweep: its validated spec and the axis values that distinguish it.

    Attributes:
        spec: the validated run spec.
        axes: dotted key -> value for every key that varies in the sweep (``seed`` included).
        label: the row label given in ``runs:`` (e.g. a Table 3 model name), if any.
    """

    spec: RunSpec
    axes: dict[str, Any]
    label: str | None = None


@dataclass(frozen=True)
class Sweep:
    """An expanded sweep: the runs to plan and dispatch, in file order."""

    name: str
    path: Path
    runs: tuple[PlannedRun, ...]
    description: str = ""
    scale: str | None = None
    axis_keys: tuple[str, ...] = ()
    scales: tuple[str, ...] = ()
    report: dict[str, Any] = field(default_factory=dict)
    search: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Layered:
    """The merged sweep document and where each piece came from."""

    doc: dict[str, Any] = field(default_factory=dict)
    base_origin: dict[str, Origin] = field(default_factory=dict)  # flattened base key -> origin
    section_source: dict[str, YamlSource] = field(default_factory=dict)  # top key -> its file


def _err(src: YamlSource, keypath: KeyPath, message: str, **kw: Any) -> SpecError:
    key = ".".join(str(p) for p in keypath)
    return SpecError(message, file=src.path, line=src.line_of(keypath), key=key or None, **kw)


def _flatten_lines(src: YamlSource, tree: Any, root: KeyPath) -> dict[str, Origin]:
    out: dict[str, Origin] = {}
    if isinstance(tree, dict):
        for dotted in flatten(tree):
            parts = dotted.split(".")
            for end in range(1, len(parts) + 1):  # leaves and every section above them
                prefix = ".".join(parts[:end])
                # dotted keys written as one YAML key ("a.b") or as nesting resolve alike
                out.setdefault(prefix, (str(src.path), src.line_of((*root, *parts[:end]))))
    return out


def _load_layers(path: Path, stack: tuple[Path, ...]) -> _Layered:
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
    for key in data:
        if key not in SWEEP_KEYS:
            raise _err(
                src,
                (key,),
                f"unknown key {key!r}{did_you_mean(str(key), SWEEP_KEYS)}",
                allowed=SWEEP_KEYS,
            )
    merged = _Layered()
    parents = data.get("extends") or []
    if isinstance(parents, str):
        parents = [parents]
    if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
        raise _err(
            src,
            ("extends",),
            "extends must be a file path or a list of them",
            value=data.get("extends"),
        )
    for index, parent in enumerate(parents):
        parent_path = path.parent / parent
        if not parent_path.is_file():
            raise _err(
                src,
                ("extends", index) if len(parents) > 1 else ("extends",),
                f"extended file not found: {parent_path}",
                show_value=False,
            )
        layer = _load_layers(parent_path, (*stack, resolved))
        _merge_layer(merged, layer)
    own = _Layered(doc=copy.deepcopy(data), section_source={k: src for k in data})
    base = data.get("base", {}) or {}
    if not isinstance(base, dict):
        raise _err(src, ("base",), "base must be a mapping (a run spec)", value=base)
    own.base_origin = _flatten_lines(src, base, ("base",))
    _merge_layer(merged, own)
    return merged


def _deep_merge(into: dict[str, Any], over: dict[str, Any]) -> None:
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


def _merge_layer(into: _Layered, layer: _Layered) -> None:
    for key, value in layer.doc.items():
        if key == "extends":
            continue
        if key in ("base", "scales") and isinstance(value, dict):
            into.doc.setdefault(key, {})
            _deep_merge(into.doc[key], value)
        else:
            into.doc[key] = copy.deepcopy(value)
        into.section_source[key] = layer.section_source[key]
    into.base_origin.update(layer.base_origin)


def _point_list(layers: _Layered, key: str) -> list[tuple[dict[str, Any], dict[str, Origin]]]:
    """``runs``/``include``/``exclude``: a list of mappings, each with per-key origins."""
    items = layers.doc.get(key)
    if items is None:
        return []
    src = layers.section_source[key]
    if not isinstance(items, list):
        raise _err(src, (key,), f"{key} must be a list of mappings", value=items)
    out = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not item:
            raise _err(
                src, (key, index), f"each {key} entry must be a non-empty mapping", value=item
            )
        origins = {str(k): (str(src.path), src.line_of((key, index, k))) for k in item}
        out.append((item, origins))
    return out


def _axis_values(src: YamlSource, where: KeyPath, values: Any) -> list[Any]:
    if not isinstance(values, list) or not values:
        raise _err(src, where, "axis values must be a non-empty list", value=values)
    return values


def _grid_points(layers: _Layered) -> list[tuple[dict[str, Any], dict[str, Origin]]]:
    grid = layers.doc.get("grid")
    if grid is None:
        return [({}, {})]
    src = layers.section_source["grid"]
    if not isinstance(grid, dict) or not grid:
        raise _err(
            src, ("grid",), "grid must be a mapping of dotted key -> list of values", value=grid
        )
    keys = list(grid)
    value_lists = [_axis_values(src, ("grid", k), grid[k]) for k in keys]
    origins = {k: (str(src.path), src.line_of(("grid", k))) for k in keys}
    combos = itertools.product(*value_lists)
    return [(dict(zip(keys, combo, strict=True)), origins) for combo in combos]


def _zip_points(layers: _Layered) -> list[tuple[dict[str, Any], dict[str, Origin]]]:
    groups = layers.doc.get("zip")
    if groups is None:
        return [({}, {})]
    src = layers.section_source["zip"]
    if isinstance(groups, dict):
        groups = [groups]
    if not isinstance(groups, list):
        raise _err(
            src,
            ("zip",),
            "zip must be a mapping (or list of mappings) of key -> list",
            value=groups,
        )
    per_group = []
    for gi, group in enumerate(groups):
        path: KeyPath = ("zip", gi) if isinstance(layers.doc["zip"], list) else ("zip",)
        if not isinstance(group, dict) or not group:
            raise _err(src, path, "each zip group must be a non-empty mapping", value=group)
        lists = {k: _axis_values(src, (*path, k), v) for k, v in group.items()}
        lengths = {k: len(v) for k, v in lists.items()}
        if len(set(lengths.values())) > 1:
            raise _err(src, path, f"zip lists must have equal lengths, got {lengths}")
        origins = {k: (str(src.path), src.line_of((*path, k))) for k in lists}
        n = next(iter(lengths.values()))
        per_group.append([({k: lists[k][i] for k in lists}, origins) for i in range(n)])
    out = []
    for combo in itertools.product(*per_group):
        point: dict[str, Any] = {}
        origins: dict[str, Origin] = {}
        for p, o in combo:
            point.update(p)
            origins.update(o)
        out.append((point, origins))
    return out


def _apply_point(base: dict[str, Any], point: dict[str, Any], origin: Origin) -> dict[str, Any]:
    spec = copy_tree(base)
    for key, value in point.items():
        if key in POINT_META_KEYS:
            continue
        try:
            if "." in key:
                set_dotted(spec, key, value)
            else:
                spec[key] = copy_tree(value)
        except TypeError as err:
            raise SpecError(str(err), file=origin[0], line=origin[1], key=key) from None
    return spec


def _matches(spec: dict[str, Any], condition: dict[str, Any]) -> bool:
    return all(get_dotted(spec, k, object()) == v for k, v in condition.items())


def _seeds(layers: _Layered) -> list[int] | None:
    seeds = layers.doc.get("seeds")
    if seeds is None:
        return None
    src = layers.section_source["seeds"]
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
    ):
        raise _err(
            src, ("seeds",), "seeds must be a non-empty list of non-negative integers", value=seeds
        )
    if len(set(seeds)) != len(seeds):
        raise _err(src, ("seeds",), "seeds must not repeat", value=seeds)
    return seeds


def _sweep_name(layers: _Layered, path: Path) -> str:
    name = layers.doc.get("name", path.stem)
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        src = layers.section_source.get("name")
        raise SpecError(
            "sweep name must be 1-100 letters, digits, '_', '.', '-' (it names a "
            "folder under runs/)",
            file=src.path if src else path,
            line=src.line_of(("name",)) if src else None,
            key="name",
            value=name,
        )
    return name


def _scale_overrides(layers: _Layered, scale: str | None) -> tuple[dict[str, Any], Origin]:
    scales = layers.doc.get("scales") or {}
    if scale is None:
        return {}, ("", None)
    if scale not in scales:
        src = layers.section_source.get("scales")
        raise SpecError(
            f"unknown scale {scale!r}{did_you_mean(scale, scales)}",
            file=src.path if src else None,
            key="scales",
            allowed=sorted(scales) or ["(none defined in this sweep)"],
        )
    src = layers.section_source["scales"]
    overrides = scales[scale] or {}
    if not isinstance(overrides, dict):
        raise _err(
            src, ("scales", scale), "a scale must be a mapping of overrides", value=overrides
        )
    return overrides, (str(src.path), src.line_of(("scales", scale)))


def load_sweep(path: str | Path, *, scale: str | None = None) -> Sweep:
    """Load, expand and validate a sweep file.

    Args:
        path: the sweep YAML.
        scale: name of a ``scales:`` entry to apply (e.g. ``tiny``): the job kind's scale hook runs
            first (``mmt`` maps real backbones to their tiny twins), then the YAML overrides.

    Raises:
        SpecError: anything malformed, with file, line, key, value and what is allowed.
    """
    path = Path(path)
    layers = _load_layers(path, ())
    name = _sweep_name(layers, path)
    base = layers.doc.get("base") or {}
    scale_over, scale_origin = _scale_overrides(layers, scale)
    runs = _point_list(layers, "runs") or [({}, {})]
    excludes = _point_list(layers, "exclude")
    includes = _point_list(layers, "include")
    seeds = _seeds(layers)

    points: list[tuple[dict[str, Any], dict[str, Origin]]] = []
    for (rp, ro), (gp, go), (zp, zo) in itertools.product(
        runs, _grid_points(layers), _zip_points(layers)
    ):
        points.append(({**rp, **gp, **zp}, {**ro, **go, **zo}))
    axis_keys: list[str] = []
    for point, _ in points + includes:
        axis_keys += [k for k in point if k not in POINT_META_KEYS and k not in axis_keys]
    if seeds is not None:
        axis_keys.append("seed")

    planned: list[PlannedRun] = []
    seen: set[str] = set()
    kept = []
    for point, origins in points:
        merged = _apply_point(base, point, next(iter(origins.values()), (str(path), None)))
        if not any(_matches(merged, cond) for cond, _ in excludes):
            kept.append((point, origins, merged))
    kept += [(p, o, _apply_point(base, p, next(iter(o.values())))) for p, o in includes]
    for point, origins, merged in kept:
        for seed in seeds if seeds is not None else [None]:
            full = merged if seed is None else {**merged, "seed": seed}
            spec = _build(layers, path, full, origins, scale, scale_over, scale_origin)
            if spec.run_id in seen:
                continue
            seen.add(spec.run_id)
            label = point.get("label")
            axes = {k: spec.get(k) for k in axis_keys}
            planned.append(
                PlannedRun(spec=spec, axes=axes, label=str(label) if label is not None else None)
            )
    if not planned:
        raise SpecError("the sweep expands to no runs (every point was excluded)", file=path)
    return Sweep(
        name=name,
        path=path,
        runs=tuple(planned),
        description=str(layers.doc.get("description", "")),
        scale=scale,
        axis_keys=tuple(axis_keys),
        scales=tuple(sorted(layers.doc.get("scales") or {})),
        report=dict(layers.doc.get("report") or {}),
        search=dict(layers.doc.get("search") or {}),
    )


def _build(
    layers: _Layered,
    path: Path,
    merged: dict[str, Any],
    origins: dict[str, Origin],
    scale: str | None,
    scale_over: dict[str, Any],
    scale_origin: Origin,
) -> RunSpec:
    if scale is not None:
        job = merged.get("job")
        try:
            hook = get_job(job).scale if isinstance(job, str) else None
        except KeyError:
            hook = None
        if hook is not None:
            try:
                merged = hook(merged, scale)
            except ValueError as err:
                raise SpecError(
                    str(err),
                    file=scale_origin[0] or path,
                    line=scale_origin[1],
                    key=f"scales.{scale}",
                ) from None
        merged = _apply_point(merged, scale_over, scale_origin)

    def locate(dotted: str) -> tuple[str | None, int | None]:
        parts = dotted.split(".")
        for end in range(len(parts), 0, -1):
            prefix = ".".join(parts[:end])
            if scale is not None and prefix in scale_over:
                return scale_origin
            if prefix in origins:
                return origins[prefix]
        for end in range(len(parts), 0, -1):
            prefix = ".".join(parts[:end])
            if prefix in layers.base_origin:
                return layers.base_origin[prefix]
        for key, origin in layers.base_origin.items():  # a missing key: point at its section
            if key.split(".")[0] == parts[0]:
                return origin[0], None
        return str(path), None

    return build_run_spec(merged, file=path, locate=locate)
