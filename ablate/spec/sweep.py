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

Each file is first validated as a :class:`~ablate.spec.sweep_document.SweepDocument` (the type of
every section), then the number of points is counted before any is built: past
``$ABLATE_MAX_POINTS`` (default :data:`DEFAULT_MAX_POINTS`) the sweep is refused with the count, so
a 300-byte file cannot ask for a million runs.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablate.errors import SpecError, did_you_mean, spec_errors
from ablate.spec.dotted import copy_tree, get_dotted, set_dotted
from ablate.spec.job_kinds import get_job
from ablate.spec.run_spec import RunSpec, build_run_spec
from ablate.spec.sweep_document import NAME_PATTERN
from ablate.spec.sweep_layers import Origin, SweepLayers, load_layers
from ablate.spec.sweep_target import SET_ORIGIN, resolve_sweep_path
from ablate.spec.validation import MAX_ERRORS
from ablate.spec.yaml_source import KeyPath

#: Points a sweep may expand to unless ``$ABLATE_MAX_POINTS`` says otherwise.
DEFAULT_MAX_POINTS = 20_000
MAX_POINTS_ENV = "ABLATE_MAX_POINTS"
POINT_META_KEYS = ("label",)
#: Errors gathered from the points before the rest are left unexpanded (the same base error
#: repeats in every point: after this many, the distinct ones are all listed).
MAX_FAILED_POINTS = 200


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


def _point_list(layers: SweepLayers, key: str) -> list[tuple[dict[str, Any], dict[str, Origin]]]:
    """``runs``/``include``/``exclude``: a list of mappings, each with per-key origins."""
    items = layers.doc.get(key)
    if items is None:
        return []
    src = layers.section_source[key]
    out = []
    for index, item in enumerate(items):  # a list of non-empty mappings (SweepDocument)
        origins = {str(k): (str(src.path), src.line_of((key, index, k))) for k in item}
        out.append((item, origins))
    return out


def _grid_points(layers: SweepLayers) -> list[tuple[dict[str, Any], dict[str, Origin]]]:
    grid = layers.doc.get("grid")
    if grid is None:
        return [({}, {})]
    src = layers.section_source["grid"]
    keys = list(grid)  # dotted key -> non-empty list (SweepDocument)
    value_lists = [grid[k] for k in keys]
    origins = {k: (str(src.path), src.line_of(("grid", k))) for k in keys}
    combos = itertools.product(*value_lists)
    return [(dict(zip(keys, combo, strict=True)), origins) for combo in combos]


def _zip_points(layers: SweepLayers) -> list[tuple[dict[str, Any], dict[str, Origin]]]:
    groups = layers.doc.get("zip")
    if groups is None:
        return [({}, {})]
    src = layers.section_source["zip"]
    if isinstance(groups, dict):
        groups = [groups]
    per_group = []
    for gi, group in enumerate(groups):  # non-empty mappings of equal-length lists (SweepDocument)
        path: KeyPath = ("zip", gi) if isinstance(layers.doc["zip"], list) else ("zip",)
        lists = dict(group)
        origins = {k: (str(src.path), src.line_of((*path, k))) for k in lists}
        n = len(next(iter(lists.values())))
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


def _sweep_name(layers: SweepLayers, path: Path) -> str:
    name = layers.doc.get("name")
    name = path.stem if name is None else name
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
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


def _scale_overrides(layers: SweepLayers, scale: str | None) -> tuple[dict[str, Any], Origin]:
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
    overrides = scales[scale] or {}  # a mapping (SweepDocument)
    return overrides, (str(src.path), src.line_of(("scales", scale)))


def max_points() -> int:
    """The most points a sweep may expand to: ``$ABLATE_MAX_POINTS`` or the default."""
    raw = os.environ.get(MAX_POINTS_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_POINTS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise SpecError(f"${MAX_POINTS_ENV} must be a positive integer", value=raw)
    return value


def _check_size(layers: SweepLayers, path: Path, limit: int) -> None:
    """Count the points (an upper bound: before ``exclude``) and refuse past ``limit``.

    The count is a product of list lengths, computed before any point is built, so a grid of a
    million points fails in microseconds instead of filling memory.
    """
    doc = layers.doc
    zips = doc.get("zip")
    zips = [zips] if isinstance(zips, dict) else zips or []
    lengths = {
        "runs": [len(doc.get("runs") or [None])],
        "grid": [len(v) for v in (doc.get("grid") or {}).values()],
        "zip": [len(next(iter(g.values()))) for g in zips],
        "seeds": [len(doc.get("seeds") or [None])],
    }
    factors = {k: math.prod(v) for k, v in lengths.items()}
    points = factors["runs"] * factors["grid"] * factors["zip"] + len(doc.get("include") or [])
    count = points * factors["seeds"]
    if count <= limit:
        return
    biggest = max(("runs", "grid", "zip"), key=lambda k: factors[k])
    src = layers.section_source.get(biggest)
    terms = ", ".join(
        f"{k} {' x '.join(map(str, v))}" for k, v in lengths.items() if v and factors[k] > 1
    )
    raise SpecError(
        f"the sweep expands to {count} points ({terms}), more than the limit of {limit}: split "
        f"it, or raise the limit with ${MAX_POINTS_ENV}",
        file=src.path if src else path,
        line=src.line_of((biggest,)) if src else None,
        key=biggest if src else None,
    )


def load_sweep(
    path: str | Path,
    *,
    scale: str | None = None,
    limit: int | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Sweep:
    """Load, expand and validate a sweep file.

    Args:
        path: the sweep YAML, or a bare name (``table3``: ``sweeps/table3.yaml``).
        scale: name of a ``scales:`` entry to apply (e.g. ``tiny``): the job kind's scale hook runs
            first (``mmt`` maps real backbones to their tiny twins), then the YAML overrides.
        limit: the most points the sweep may expand to (default :func:`max_points`).
        overrides: ``--set`` values, dotted key -> value, applied to every run last (after the
            scale), validated and hashed like the file's own values.

    Raises:
        SpecError: anything malformed, with file, line, key, value and what is allowed (every
            error of the file at once, up to a limit); or more points than ``limit`` (the message
            gives the count); or a file that is not there (naming the nearest sweep).
    """
    path = resolve_sweep_path(path)
    overrides = dict(overrides or {})
    layers = load_layers(path)
    name = _sweep_name(layers, path)
    _check_size(layers, path, max_points() if limit is None else limit)
    base = layers.doc.get("base") or {}
    scale_over, scale_origin = _scale_overrides(layers, scale)
    runs = _point_list(layers, "runs") or [({}, {})]
    excludes = _point_list(layers, "exclude")
    includes = _point_list(layers, "include")
    seeds = layers.doc.get("seeds")  # distinct seeds in range (SweepDocument)

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
    errors: list[SpecError] = []
    # a point's seeds share its config unless a scale hook or --set rewrites the seed's spec
    same_config = scale is None and "seed" not in {k.split(".")[0] for k in overrides}
    for point, origins, merged in kept:
        if len(errors) >= MAX_FAILED_POINTS:
            break
        label = point.get("label")

        def build(full: dict[str, Any], origins: dict[str, Origin] = origins) -> RunSpec | None:
            try:
                return _build(
                    layers, path, full, origins, scale, scale_over, scale_origin, overrides
                )
            except SpecError as err:  # keep going: every error of the file at once
                errors.extend(getattr(err, "errors", [err]))
                return None

        for spec, axes in _seed_runs(merged, seeds, build, axis_keys, same_config=same_config):
            if spec.run_id in seen:
                continue
            seen.add(spec.run_id)
            planned.append(
                PlannedRun(spec=spec, axes=axes, label=str(label) if label is not None else None)
            )
    if errors:
        raise spec_errors(errors, MAX_ERRORS)
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


def _seed_runs(
    merged: dict[str, Any],
    seeds: list[int] | None,
    build: Callable[[dict[str, Any]], RunSpec | None],
    axis_keys: list[str],
    *,
    same_config: bool,
) -> Iterator[tuple[RunSpec, dict[str, Any]]]:
    """One point's run for each seed (``build`` returns None for a failed one), with its axes.

    With ``same_config`` (no scale hook or ``--set seed`` to rewrite a seed's spec) the seeds
    share the point's sections, hence its config: it is validated, dumped and encoded with the
    first seed that builds, and the other seeds (checked with the file: ``SweepDocument``) take
    it with their own seed, their axis values differing from the first's at ``seed`` alone.
    Identical runs and ids to building each seed, at a tenth of the cost for ten seeds.
    """
    if seeds is None:
        spec = build(merged)
        if spec is not None:
            yield spec, {k: spec.get(k) for k in axis_keys}
        return
    first: tuple[RunSpec, dict[str, Any]] | None = None
    for seed in seeds:
        if first is not None and same_config:
            yield first[0].with_seed(seed), {**first[1], "seed": seed}
            continue
        spec = build({**merged, "seed": seed})
        if spec is not None:
            first = (spec, {k: spec.get(k) for k in axis_keys})
            yield first


def _build(
    layers: SweepLayers,
    path: Path,
    merged: dict[str, Any],
    origins: dict[str, Origin],
    scale: str | None,
    scale_over: dict[str, Any],
    scale_origin: Origin,
    overrides: dict[str, Any],
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
    if overrides:
        merged = _apply_point(merged, overrides, (SET_ORIGIN, None))

    def locate(dotted: str) -> tuple[str | None, int | None]:
        parts = dotted.split(".")
        for end in range(len(parts), 0, -1):
            prefix = ".".join(parts[:end])
            if prefix in overrides:
                return SET_ORIGIN, None
            if scale is not None and prefix in scale_over:
                return scale_origin
            if prefix in origins:
                return origins[prefix]
        for end in range(len(parts), 0, -1):
            prefix = ".".join(parts[:end])
            if prefix in layers.base_origin:
                return layers.base_origin[prefix]
        below = dotted + "."  # a section the point wrote one field of (adapter.name: x)
        for key, origin in origins.items():
            if key.startswith(below):
                return origin
        for key, origin in layers.base_origin.items():  # a missing key: point at its section
            if key.split(".")[0] == parts[0]:
                return origin[0], None
        return str(path), None

    return build_run_spec(merged, file=path, locate=locate)


def row_key(run: PlannedRun) -> tuple[str, dict[str, Any]]:
    """The row a planned run belongs to: its label, or its axis values without ``seed``."""
    axes = {k: v for k, v in run.axes.items() if k != "seed"}
    if run.label is not None:
        return run.label, axes
    text = ", ".join(f"{k}={_short(v)}" for k, v in sorted(axes.items()))
    return text, axes


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("name", json.dumps(value, sort_keys=True)))
    return str(value)
