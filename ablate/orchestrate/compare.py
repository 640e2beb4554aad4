"""One row per run of a sweep, its result beside the fields that set it apart: ``ablate compare``.

The same rows close a sweep's live display (the runs it just ran) and answer ``ablate compare
FILE`` (every run of the sweep in the store): the run's label, the axis fields that differ
between the runs (:mod:`ablate.orchestrate.run_columns`), its scale, its state, the validation and
test averages of its latest successful attempt and that attempt's wall time. Rows sort by any
column (accuracies best first, missing values last) and print as a table, markdown, CSV or JSON.

A sweep file names no scale; the runs in the store were made at one (``--scale tiny``). Without
``--scale`` the sweep is expanded at full scale and at each of its ``scales`` and the variant with
the most recorded runs is the one shown (ties go to full scale): ``ablate status`` and ``ablate
compare`` on a file describe the runs that exist, not a plan nobody ran.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ablate.orchestrate.run_columns import (
    ACCURACY_KEYS,
    axis_columns,
    cell_text,
    flat_axes,
    format_seconds,
)

if TYPE_CHECKING:
    from ablate.orchestrate.outcomes import SweepResult
    from ablate.orchestrate.plan import Plan
    from ablate.spec.sweep import PlannedRun, Sweep
    from ablate.store.record import AttemptRecord
    from ablate.store.results_store import ResultsStore

COMPARE_FORMATS = ("table", "md", "csv", "json")
FULL_SCALE = "full"


@dataclass(frozen=True)
class Comparison:
    """Rows of runs and the columns to show, in order.

    Attributes:
        columns: ``run_id``, ``label`` (when any run has one), the axis columns
            (:class:`~ablate.orchestrate.run_columns.AxisColumn`), ``scale``, ``state``, the
            accuracy columns, ``time``.
        rows: one dict per run: the axis columns' text, every varying dotted field's value,
            accuracies as floats (None when missing), ``time_s`` in seconds.
        fields: axis column -> the dotted fields it shows (CSV and JSON write those instead).
    """

    columns: tuple[str, ...]
    rows: tuple[dict[str, Any], ...]
    fields: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def data_columns(self) -> list[str]:
        """:attr:`columns` with each axis column replaced by its dotted fields."""
        return [f for c in self.columns for f in self.fields.get(c, (c,))]

    def sorted_by(self, column: str, *, reverse: bool = False) -> Comparison:
        """Rows ordered by ``column``: accuracies best first, others ascending; blanks last.

        Raises:
            ValueError: ``column`` is neither a column nor a dotted field (the message lists the
                columns).
        """
        if column not in self.columns and column not in self.data_columns:
            raise ValueError(f"--sort: no column {column!r}; columns: {', '.join(self.columns)}")
        key = "time_s" if column == "time" else column
        present = [r for r in self.rows if r.get(key) is not None]
        missing = [r for r in self.rows if r.get(key) is None]
        best_first = column in ACCURACY_KEYS
        present.sort(key=lambda r: _sort_key(r[key]), reverse=best_first != reverse)
        return Comparison(self.columns, (*present, *missing), self.fields)


def _sort_key(value: Any) -> tuple[int, Any]:
    """Numbers before text, each in natural order."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value))
    return (1, cell_text(value))


def compare_runs(
    runs: Sequence[tuple[PlannedRun, str, AttemptRecord | None]], scale: str | None
) -> Comparison:
    """The comparison of ``(run, state, successful record or None)`` triples.

    Args:
        runs: each run with its state (``done``, ``failed``, ...) and the record its result
            comes from (its latest successful attempt), if any.
        scale: the scale the runs were expanded at (None: full scale).
    """
    flats = [flat_axes(run.axes) for run, _, _ in runs]
    axes = axis_columns(flats, dict.fromkeys(key for run, _, _ in runs for key in run.axes))
    rows = []
    for (run, state, record), flat in zip(runs, flats, strict=True):
        metrics = record.metrics if record is not None else {}
        row: dict[str, Any] = {"run_id": run.spec.run_id, "label": run.label}
        row.update({f: flat.get(f) for column in axes for f in column.fields})
        row.update({c.name: c.cell(flat) for c in axes if c.fields != (c.name,)})
        row.update({"scale": scale or FULL_SCALE, "state": state})
        row.update({key: _number(metrics.get(key)) for key in ACCURACY_KEYS})
        row["time_s"] = record.duration_s if record is not None else None
        rows.append(row)
    label = ["label"] if any(run.label for run, _, _ in runs) else []
    columns = ("run_id", *label, *(c.name for c in axes), "scale", "state", *ACCURACY_KEYS)
    return Comparison((*columns, "time"), tuple(rows), {c.name: c.fields for c in axes})


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def compare_plan(plan: Plan, store: ResultsStore) -> Comparison:
    """Every run of a plan with its latest successful attempt's result from the store."""
    runs = []
    for entry in plan.entries:
        record = None
        if entry.history.succeeded_in is not None:
            successes = [r for r in store.attempts_of(entry.run_id) if r.status.value == "success"]
            record = successes[-1] if successes else None
        runs.append((entry.run, entry.state.value, record))
    return compare_runs(runs, plan.sweep.scale)


def invocation_results(result: SweepResult) -> Comparison | None:
    """The runs one ``ablate sweep`` ran, in the plan's order.

    Each run is shown by its success, or else by its last attempt.
    """
    entries = {entry.run_id: entry for entry in result.plan.entries}
    shown: dict[str, AttemptRecord] = {}
    for record in result.records:
        kept = shown.get(record.run_id)
        if record.run_id in entries and (kept is None or kept.status.value != "success"):
            shown[record.run_id] = record
    if not shown:
        return None
    order = {run_id: i for i, run_id in enumerate(entries)}
    runs = [
        (entries[run_id].run, "done", r)
        if r.status.value == "success"
        else (entries[run_id].run, r.status.value, None)
        for run_id, r in sorted(shown.items(), key=lambda item: order[item[0]])
    ]  # in the order the sweep file lists them
    return compare_runs(runs, result.plan.sweep.scale)


def next_commands(result: SweepResult) -> list[str]:
    """What to run next: the report and the comparison of the sweep, once a run succeeded."""
    if not any(record.status.value == "success" for record in result.records):
        return []
    sweep = result.plan.sweep
    scale = f" --scale {sweep.scale}" if sweep.scale else ""
    return [f"ablate report {sweep.path}{scale}", f"ablate compare {sweep.path}{scale}"]


def load_sweep_as_stored(
    path: Path,
    store: ResultsStore,
    scale: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Sweep:
    """The sweep at ``scale``, or (None) at the scale with the most runs recorded in ``store``.

    Expanding a sweep at each of its scales costs what loading it costs, once per scale (specs
    only, no torch); the store is read from its summary index. ``overrides``: ``--set`` values.
    """
    from ablate.spec.sweep import load_sweep

    full = load_sweep(path, scale=scale, overrides=overrides)
    if scale is not None or not full.scales:
        return full
    recorded = set(store.attempt_columns()["run_id"])
    best, best_n = full, sum(run.spec.run_id in recorded for run in full.runs)
    for name in full.scales:
        variant = load_sweep(path, scale=name, overrides=overrides)
        found = sum(run.spec.run_id in recorded for run in variant.runs)
        if found > best_n:
            best, best_n = variant, found
    return best


def cell(row: dict[str, Any], column: str) -> str:
    """A comparison cell as text: accuracies to two decimals, the time as ``3m05s``."""
    if column == "time":
        seconds = row.get("time_s")
        return format_seconds(seconds) if seconds is not None else ""
    value = row.get(column)
    if column in ACCURACY_KEYS and value is not None:
        return f"{value:.2f}"
    return cell_text(value)


def write_comparison(table: Comparison, fmt: str, stream: IO[str]) -> None:
    """Markdown, CSV or JSON (typed values) of ``table`` to ``stream``.

    Raises:
        ValueError: an unknown format.
    """
    columns = table.data_columns
    if fmt == "json":
        rows = [{c: row.get("time_s" if c == "time" else c) for c in columns} for row in table.rows]
        json.dump({"columns": columns, "rows": rows}, stream, default=str)
        stream.write("\n")
    elif fmt == "csv":
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[_csv(row, c) for c in columns] for row in table.rows])
    elif fmt == "md":
        stream.write("\n".join(markdown_lines(table)) + "\n")
    else:
        raise ValueError(f"--format must be one of {', '.join(COMPARE_FORMATS)}, got {fmt!r}")
    stream.flush()


def _csv(row: dict[str, Any], column: str) -> str:
    if column == "time":
        seconds = row.get("time_s")
        return f"{seconds:.1f}" if seconds is not None else ""
    value = row.get(column)
    return json.dumps(value) if isinstance(value, (list, dict)) else cell_text(value)


def markdown_lines(table: Comparison) -> list[str]:
    """A GitHub-markdown table (pipes in cells escaped)."""
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    for row in table.rows:
        cells = (cell(row, c).replace("|", "\\|") for c in table.columns)
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def plain_lines(table: Comparison, columns: Iterable[str] | None = None) -> list[str]:
    """Aligned text columns with a dashed rule under the header (logs, pipes)."""
    columns = list(columns or table.columns)
    cells = [[cell(row, c) for c in columns] for row in table.rows]
    widths = [max([len(c), *(len(line[i]) for line in cells)]) for i, c in enumerate(columns)]

    def join(parts: list[str]) -> str:
        return "  ".join(p.ljust(w) for p, w in zip(parts, widths, strict=True)).rstrip()

    return [join(columns), join(["-" * w for w in widths]), *(join(line) for line in cells)]


def rich_table(table: Comparison, title: str | None = None) -> Any:
    """A ``rich.table.Table`` of ``table`` (cells are plain text, never markup)."""
    from rich.table import Table
    from rich.text import Text

    grid = Table(title=title, title_justify="left")
    for column in table.columns:
        numeric = column in ACCURACY_KEYS or column == "time"
        grid.add_column(column, justify="right" if numeric else "left", overflow="fold")
    for row in table.rows:
        grid.add_row(*(Text(cell(row, c)) for c in table.columns))
    return grid
