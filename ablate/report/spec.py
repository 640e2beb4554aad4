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
    speed: [gpu_h, samples_per_s, mfu]    # optional throughput and cost columns (either layout)

``speed`` names columns of :data:`~ablate.report.speed.SPEED_COLUMNS` (``gpu_h``,
``samples_per_s``, ``tokens_per_s``, ``mfu``, ``peak_gib``), shown after the statistics.

A sweep row is matched to a spec row by its ``label`` (the sweep's ``runs:`` label) or, with
``match``, by axis values. Sweep rows no spec row names are shown after the others, without a
paper value, so an extended sweep is never silently cut short.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, ConfigDict, Field, field_validator, model_validator

from ablate.errors import SpecError
from ablate.report.speed import SPEED_COLUMNS
from ablate.spec.base import SpecModel, invalid_at, spec_problem
from ablate.spec.validation import error_at, source_locator, validate
from ablate.spec.yaml_source import load_yaml

LAYOUTS = ("columns", "rows")
PLOT_KINDS = ("heatmap", "bars", "none")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        raise ValueError(
            'YAML read this item as a boolean (NO, yes, on, off ...): quote it, e.g. "NO"'
        )
    return "" if value is None else str(value)


def _text_list(value: Any) -> Any:
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)):
        raise ValueError("expected a list")
    return value


def _number(value: Any) -> float | None:
    if value is None or value == "-":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("expected a number, null or '-'")
    return float(value)


Text = Annotated[str, BeforeValidator(_text)]
"""A table cell or header: YAML's booleans (``NO``, ``yes``) refused, numbers read as text."""
TextList = Annotated[tuple[Text, ...], BeforeValidator(_text_list)]
PaperNumber = Annotated[float | None, BeforeValidator(_number)]
"""A paper value: a number, or ``null`` / ``-`` where the paper has none."""


class ReportModel(SpecModel):
    """Base of the report spec's parts: names and labels written as numbers are read as text."""

    model_config = ConfigDict(coerce_numbers_to_str=True)


class PaperRow(ReportModel):
    """A row of the paper's Table 1 (``None`` where the paper prints "-")."""

    method: str
    values: tuple[PaperNumber, ...] = ()


class RowSpec(ReportModel):
    """One row of a rows-layout table.

    Attributes:
        label: the sweep label this row shows (or ``None`` when ``match`` selects it).
        match: axis values (dotted keys) a sweep row must have, when selected by value.
        cells: the fixed descriptive cells (as text), one per ``ReportSpec.cells`` header.
        paper: the paper's value of the metric, if it has one.
    """

    label: str | None = None
    match: dict[str, Any] = Field(default_factory=dict)
    cells: TextList = ()
    paper: PaperNumber = None

    @field_validator("match", mode="before")
    @classmethod
    def _match(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, dict):
            raise ValueError("expected a mapping of axis keys")
        return value or {}

    @model_validator(mode="after")
    def _one_selector(self) -> RowSpec:
        if (self.label is None) == (not self.match):
            raise ValueError("a row needs exactly one of 'label' or 'match'")
        return self

    @property
    def name(self) -> str:
        """How the row is named when it has to be named in text (tests, notes)."""
        if self.label is not None:
            return self.label
        return ", ".join(f"{k}={v}" for k, v in self.match.items())


class PlotSpec(ReportModel):
    """The figure drawn beside a table (``kind: none`` for no figure)."""

    kind: str = "none"
    x: str | None = None
    y: str | None = None

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str) -> str:
        if value not in PLOT_KINDS:
            raise spec_problem("unknown plot kind", PLOT_KINDS)
        return value

    @model_validator(mode="after")
    def _axes(self) -> PlotSpec:
        if self.kind == "heatmap" and not (self.x and self.y):
            raise ValueError("a heatmap needs x and y axis keys (e.g. adapter.dim)")
        return self


class ReportSpec(ReportModel):
    """A validated report spec (see the module docstring for the file format)."""

    path: Path
    """The spec file (filled in by the loader; the table's sweep is found relative to it)."""
    sweep: str
    """The sweep file the table shows, relative to this file."""
    layout: str
    """``columns`` (one column per accuracy class) or ``rows`` (one row per ablation)."""
    name: str = ""
    """Default: the file name without ``.yaml``."""
    title: str = ""
    """Default: the name."""
    metric: str = "test/Avg"
    columns: TextList = ()
    metric_prefix: str = "test/"
    reference: str | None = None
    """The paper row (columns) or row label (rows) the others are compared with."""
    ours: str = "ours"
    paper: tuple[PaperRow, ...] = ()
    cells: TextList = ()
    rows: tuple[RowSpec, ...] = ()
    plot: PlotSpec = PlotSpec()
    notes: TextList = ()
    speed: TextList = ()
    """Throughput and cost columns (:data:`~ablate.report.speed.SPEED_COLUMNS`), in order."""

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        if isinstance(data, dict):
            name = data.get("name") or Path(str(data.get("path", ""))).stem
            data = {**data, "name": name, "title": data.get("title") or name}
            for key, what, types in (
                ("plot", "a mapping such as {kind: bars}", (dict, PlotSpec)),
                ("paper", "a list of {method, values}", (list, tuple)),
                ("rows", "a list of rows", (list, tuple)),
            ):
                if data.get(key) is None:
                    data.pop(key, None)
                elif not isinstance(data[key], types):
                    raise invalid_at(cls, (key,), f"expected {what}", data[key])
        return data

    @field_validator("layout")
    @classmethod
    def _layout(cls, value: str) -> str:
        if value not in LAYOUTS:
            raise spec_problem("unknown layout", LAYOUTS)
        return value

    @field_validator("speed")
    @classmethod
    def _speed(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if name not in SPEED_COLUMNS:
                raise spec_problem(f"unknown speed column {name!r}", tuple(SPEED_COLUMNS))
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ReportSpec:
        if self.layout == "columns":
            if not self.columns:
                raise invalid_at(
                    self, ("columns",), "a columns layout needs a non-empty columns list", None
                )
            width = len(self.columns)
            for i, row in enumerate(self.paper):
                if len(row.values) != width:
                    raise invalid_at(
                        self,
                        ("paper", i, "values"),
                        f"expected a list of {width} values (one per column)",
                        None,
                    )
            names, what = [p.method for p in self.paper], "a paper row"
        else:
            for i, row in enumerate(self.rows):
                if len(row.cells) != len(self.cells):
                    raise invalid_at(
                        self,
                        ("rows", i, "cells"),
                        f"expected {len(self.cells)} cells (one per 'cells' header)",
                        None,
                    )
            names, what = [r.name for r in self.rows], "a row's label"
        if self.reference is not None and self.reference not in names:
            raise invalid_at(
                self, ("reference",), f"reference must name {what}", self.reference, allowed=names
            )
        return self

    @property
    def sweep_path(self) -> Path:
        """The sweep file, resolved against this spec's folder."""
        return (self.path.parent / self.sweep).resolve()


def load_report_spec(path: Path | str) -> ReportSpec:
    """Read and validate a report spec.

    Raises:
        SpecError: the file is missing or malformed; the message names the file, line and key.
    """
    path = Path(path)
    src = load_yaml(path)
    data = src.data
    if not isinstance(data, dict):
        raise SpecError(
            "a report spec must be a mapping",
            file=path,
            line=1,
            allowed=[f for f in ReportSpec.model_fields if f != "path"],
        )
    spec = validate(
        ReportSpec, {**data, "path": path}, file=path, locate=source_locator(src), hidden=("path",)
    )
    if not spec.sweep_path.is_file():
        raise error_at(
            src, ("sweep",), f"sweep file not found: {spec.sweep_path}", show_value=False
        )
    return spec


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
