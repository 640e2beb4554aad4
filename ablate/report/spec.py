"""Report specs: which sweep a table shows, its row/column layout and the paper's values.

A report spec is a YAML file in ``reports/``. Two layouts cover the paper's tables::

    # columns layout (Table 1): one row per method, one column per accuracy class
    name: table1
    title: "Table 1: Accuracy on the ScienceQA test set"
    sweep: ../sweeps/table1.yaml          # relative to this file
    layout: columns
    columns: [NAT, SOC, LAN, TXT, IMG, NO, G1-6, G7-12, Avg]   # metrics test/<column>
    reference: 7B-lite-diht-BA            # the paper row our rows are compared with
    ours: "7B-lite-diht-BA (ours)"        # name of our row(s)
    paper:
      - {method: Human, values: [90.23, ..., 88.40]}            # null where the paper has "-"

    # rows layout (Tables 2 and 3): one row per ablation, the overall accuracy and its statistics
    name: table2
    sweep: ../sweeps/table2.yaml
    layout: rows
    metric: test/Avg
    cells: [Dim, Groups]                  # fixed descriptive columns, filled per row
    reference: "dim 16, groups 2"         # paired tests run against this row
    rows:
      - {label: "dim 8, groups 2", cells: [8, 2], paper: 87.88}
      - {match: {adapter.dim: 4}, cells: [4, 2], paper: 86.49}   # by axis values instead of label
    plot: {kind: heatmap, x: adapter.groups, y: adapter.dim}   # or {kind: bars}
    notes: ["free text printed under the table"]

A sweep row is matched to a spec row by its ``label`` (the sweep's ``runs:`` label) or, with
``match``, by axis values. Sweep rows no spec row names are shown after the others, without a
paper value, so an extended sweep is never silently cut short.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablate.errors import SpecError, did_you_mean
from ablate.spec.yaml_source import KeyPath, YamlSource, load_yaml

REPORT_KEYS = (
    "name",
    "title",
    "sweep",
    "layout",
    "metric",
    "columns",
    "metric_prefix",
    "reference",
    "ours",
    "paper",
    "cells",
    "rows",
    "plot",
    "notes",
)
LAYOUTS = ("columns", "rows")
PLOT_KINDS = ("heatmap", "bars", "none")
ROW_KEYS = ("label", "match", "cells", "paper")
PAPER_ROW_KEYS = ("method", "values")


@dataclass(frozen=True)
class PaperRow:
    """A row of the paper's Table 1 (``None`` where the paper prints "-")."""

    method: str
    values: tuple[float | None, ...]


@dataclass(frozen=True)
class RowSpec:
    """One row of a rows-layout table.

    Attributes:
        label: the sweep label this row shows (or ``None`` when ``match`` selects it).
        match: axis values (dotted keys) a sweep row must have, when selected by value.
        cells: the fixed descriptive cells (as text), one per ``ReportSpec.cells`` header.
        paper: the paper's value of the metric, if it has one.
    """

    label: str | None
    match: dict[str, Any]
    cells: tuple[str, ...]
    paper: float | None

    @property
    def name(self) -> str:
        """How the row is named when it has to be named in text (tests, notes)."""
        if self.label is not None:
            return self.label
        return ", ".join(f"{k}={v}" for k, v in self.match.items())


@dataclass(frozen=True)
class PlotSpec:
    """The figure drawn beside a table (``kind: none`` for no figure)."""

    kind: str = "none"
    x: str | None = None
    y: str | None = None


@dataclass(frozen=True)
class ReportSpec:
    """A validated report spec (see the module docstring for the file format)."""

    name: str
    path: Path
    sweep_path: Path
    layout: str
    title: str
    metric: str = "test/Avg"
    columns: tuple[str, ...] = ()
    metric_prefix: str = "test/"
    reference: str | None = None
    ours: str = "ours"
    paper: tuple[PaperRow, ...] = ()
    cells: tuple[str, ...] = ()
    rows: tuple[RowSpec, ...] = ()
    plot: PlotSpec = field(default_factory=PlotSpec)
    notes: tuple[str, ...] = ()


def _err(src: YamlSource, keypath: KeyPath, message: str, **kw: Any) -> SpecError:
    key = ".".join(str(p) for p in keypath)
    return SpecError(message, file=src.path, line=src.line_of(keypath), key=key or None, **kw)


def _number(src: YamlSource, keypath: KeyPath, value: Any) -> float | None:
    if value is None or value == "-":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _err(src, keypath, "expected a number, null or '-'", value=value)
    return float(value)


def _str_list(src: YamlSource, keypath: KeyPath, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _err(src, keypath, "expected a list", value=value)
    for index, item in enumerate(value):
        if isinstance(item, bool):
            raise _err(
                src,
                (*keypath, index),
                'YAML read this item as a boolean (NO, yes, on, off ...): quote it, e.g. "NO"',
                value=item,
            )
    return tuple("" if v is None else str(v) for v in value)


def _check_keys(src: YamlSource, keypath: KeyPath, data: dict[str, Any], allowed: tuple) -> None:
    for key in data:
        if key not in allowed:
            raise _err(
                src,
                (*keypath, key),
                f"unknown key {key!r}{did_you_mean(str(key), allowed)}",
                allowed=allowed,
            )


def load_report_spec(path: Path | str) -> ReportSpec:
    """Read and validate a report spec.

    Raises:
        SpecError: the file is missing or malformed; the message names the file, line and key.
    """
    path = Path(path)
    src = load_yaml(path)
    data = src.data
    if not isinstance(data, dict):
        raise SpecError("a report spec must be a mapping", file=path, line=1, allowed=REPORT_KEYS)
    _check_keys(src, (), data, REPORT_KEYS)
    for required in ("sweep", "layout"):
        if required not in data:
            raise SpecError(f"missing key {required!r}", file=path, line=1)
    layout = data["layout"]
    if layout not in LAYOUTS:
        raise _err(src, ("layout",), "unknown layout", value=layout, allowed=LAYOUTS)
    sweep_path = (path.parent / str(data["sweep"])).resolve()
    if not sweep_path.is_file():
        raise _err(src, ("sweep",), f"sweep file not found: {sweep_path}", show_value=False)
    name = str(data.get("name") or path.stem)
    spec: dict[str, Any] = {
        "name": name,
        "path": path,
        "sweep_path": sweep_path,
        "layout": layout,
        "title": str(data.get("title") or name),
        "metric": str(data.get("metric") or "test/Avg"),
        "metric_prefix": str(data.get("metric_prefix") or "test/"),
        "reference": None if data.get("reference") is None else str(data["reference"]),
        "ours": str(data.get("ours") or "ours"),
        "notes": _str_list(src, ("notes",), data.get("notes")),
        "cells": _str_list(src, ("cells",), data.get("cells")),
        "plot": _plot(src, data.get("plot")),
    }
    if layout == "columns":
        spec["columns"] = _str_list(src, ("columns",), data.get("columns"))
        if not spec["columns"]:
            raise _err(src, ("columns",), "a columns layout needs a non-empty columns list")
        spec["paper"] = _paper_rows(src, data.get("paper"), len(spec["columns"]))
        methods = [p.method for p in spec["paper"]]
        if spec["reference"] is not None and spec["reference"] not in methods:
            raise _err(
                src,
                ("reference",),
                "reference must name a paper row",
                value=spec["reference"],
                allowed=methods,
            )
    else:
        spec["rows"] = _rows(src, data.get("rows"), len(spec["cells"]))
        names = [r.name for r in spec["rows"]]
        if spec["reference"] is not None and spec["reference"] not in names:
            raise _err(
                src,
                ("reference",),
                "reference must name a row's label",
                value=spec["reference"],
                allowed=names,
            )
    return ReportSpec(**spec)


def _plot(src: YamlSource, value: Any) -> PlotSpec:
    if value is None:
        return PlotSpec()
    if not isinstance(value, dict):
        raise _err(src, ("plot",), "expected a mapping such as {kind: bars}", value=value)
    _check_keys(src, ("plot",), value, ("kind", "x", "y"))
    kind = value.get("kind", "none")
    if kind not in PLOT_KINDS:
        raise _err(src, ("plot", "kind"), "unknown plot kind", value=kind, allowed=PLOT_KINDS)
    if kind == "heatmap" and not (value.get("x") and value.get("y")):
        raise _err(src, ("plot",), "a heatmap needs x and y axis keys (e.g. adapter.dim)")
    return PlotSpec(kind, value.get("x"), value.get("y"))


def _paper_rows(src: YamlSource, value: Any, width: int) -> tuple[PaperRow, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _err(src, ("paper",), "expected a list of {method, values}", value=value)
    rows = []
    for i, item in enumerate(value):
        if not isinstance(item, dict) or "method" not in item:
            raise _err(src, ("paper", i), "expected a mapping with 'method' and 'values'")
        _check_keys(src, ("paper", i), item, PAPER_ROW_KEYS)
        values = item.get("values") or []
        if not isinstance(values, list) or len(values) != width:
            raise _err(
                src, ("paper", i, "values"), f"expected a list of {width} values (one per column)"
            )
        nums = tuple(_number(src, ("paper", i, "values", j), v) for j, v in enumerate(values))
        rows.append(PaperRow(str(item["method"]), nums))
    return tuple(rows)


def _rows(src: YamlSource, value: Any, width: int) -> tuple[RowSpec, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _err(src, ("rows",), "expected a list of rows", value=value)
    rows = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise _err(src, ("rows", i), "expected a mapping with 'label' or 'match'", value=item)
        _check_keys(src, ("rows", i), item, ROW_KEYS)
        label = item.get("label")
        match = item.get("match") or {}
        if (label is None) == (not match):
            raise _err(src, ("rows", i), "a row needs exactly one of 'label' or 'match'")
        if not isinstance(match, dict):
            raise _err(src, ("rows", i, "match"), "expected a mapping of axis keys", value=match)
        cells = _str_list(src, ("rows", i, "cells"), item.get("cells"))
        if len(cells) != width:
            raise _err(
                src, ("rows", i, "cells"), f"expected {width} cells (one per 'cells' header)"
            )
        paper = _number(src, ("rows", i, "paper"), item.get("paper"))
        rows.append(RowSpec(None if label is None else str(label), dict(match), cells, paper))
    return tuple(rows)


def find_report_spec(sweep_path: Path | str, reports_dir: Path | str) -> Path | None:
    """The report spec in ``reports_dir`` whose ``sweep`` is ``sweep_path`` (``None`` if none)."""
    target = Path(sweep_path).resolve()
    reports = Path(reports_dir)
    if not reports.is_dir():
        return None
    for candidate in sorted(reports.glob("*.yaml")):
        try:
            src = load_yaml(candidate)
        except SpecError:
            continue
        data = src.data
        if (
            isinstance(data, dict)
            and isinstance(data.get("sweep"), str)
            and (candidate.parent / data["sweep"]).resolve() == target
        ):
            return candidate
    return None
