"""How a plan is shown: a summary for large plans, the full table on request, CSV or JSON for files.

A sweep of 10,000 points drawn as a box table is 1.3 MB of text and takes rich ~10 s to lay out,
longer than expanding and planning the sweep. So a plan with more than :data:`SUMMARY_ABOVE` rows
prints as a summary (the axes and their values, the first and last rows, the counts by state) and
the full table only on request: ``--show all`` on screen, ``--format csv|json`` for a file.

Off a terminal (a pipe, a log, CI) the table is plain aligned text without box drawing or colour,
so logs stay greppable. ``-q`` prints the counts line alone. The counts line (``2 runs: 2 new; 2
to dispatch``) is the last line of every text form, the one that scripts and tests look for.

Text forms show only what differs between the runs: nested axis values (a Table 3 row's whole
``adapter`` section) as dotted fields, and of those, and of the bookkeeping columns, the ones whose
values are not the same in every row (:mod:`ablate.orchestrate.run_columns`). CSV and JSON keep
every field.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from ablate.orchestrate.run_columns import (
    axis_columns,
    axis_keys_of,
    cell_text,
    flat_axes,
    varying_keys,
)

if TYPE_CHECKING:
    from rich.console import Console

    from ablate.orchestrate.plan import Plan

SUMMARY_ABOVE = 40  # plans with more rows print as a summary unless `--show all`
EDGE_ROWS = 5  # rows shown at each end of a summary
AXIS_VALUES_SHOWN = 8  # distinct values listed per axis in a summary
SHOW_CHOICES = ("auto", "all", "summary")
FORMATS = ("table", "csv", "json")
BASE_COLUMNS = ("run_id", "state", "dispatch", "attempts", "failures")
ALWAYS_SHOWN = ("run_id", "state")  # the other base columns only when they differ between rows


@dataclass(frozen=True)
class PlanTable:
    """The plan as rows and columns, with SLURM job states merged in (what every view prints).

    Attributes:
        title: e.g. ``sweep table3 (scale tiny) -> runs/table3/``.
        columns: every column in order (what CSV and JSON write): the base columns, ``slurm``
            and ``label`` when any row has one, then the axes as dotted fields.
        axis_keys: the axes as dotted fields (the last columns).
        shown: the columns a text table prints: run id, state, the others that vary, then the
            axes' :class:`~ablate.orchestrate.run_columns.AxisColumn` names (their text is in
            the rows under those names).
        rows: one dict per run, in sweep order; ``dispatch`` is a bool.
        counts: runs per state, plan states first, then SLURM's (``pending``, ``running``).
    """

    title: str
    columns: tuple[str, ...]
    axis_keys: tuple[str, ...]
    rows: tuple[dict[str, Any], ...]
    counts: dict[str, int]
    shown: tuple[str, ...] = ()

    @property
    def shown_axes(self) -> tuple[str, ...]:
        """The axis columns a text table prints (after the bookkeeping ones)."""
        return tuple(c for c in self.shown if c not in BASE_COLUMNS and c not in ("slurm", "label"))

    @property
    def to_dispatch(self) -> int:
        """Runs the sweep will start."""
        return sum(1 for row in self.rows if row["dispatch"])

    def counts_line(self) -> str:
        """``10000 runs: 1005 new, 6953 done, 2042 failed; 3047 to dispatch``."""
        text = ", ".join(f"{n} {state}" for state, n in self.counts.items() if n)
        return f"{len(self.rows)} runs: {text}; {self.to_dispatch} to dispatch"


def plan_table(plan: Plan, title: str, slurm: Any = None) -> PlanTable:
    """The rows of ``plan``; ``slurm`` (a look at a SLURM sweep) adds each run's job and state.

    A run whose SLURM job is queued or running holds no claim yet, so the plan alone would call
    it new; with ``slurm`` it shows the job's state and is not counted as left to dispatch.
    """
    rows = [_flat_row(row, plan.sweep.axis_keys) for row in plan.rows()]
    jobs = slurm.jobs if slurm is not None else {}
    live = set(slurm.live) if slurm is not None else set()
    for row in rows:
        job = jobs.get(row["run_id"])
        if job is not None:
            row["slurm"] = f"{job['job_id']} {job['state'].lower()}"
            if row["run_id"] in live and row["state"] != "done":
                row["state"], row["dispatch"] = job["state"].lower(), False
    columns = list(BASE_COLUMNS)
    if jobs:
        columns.append("slurm")
    if any(row.get("label") for row in rows):
        columns.append("label")
    flats = [row.pop("_axes") for row in rows]
    axis_keys = tuple(axis_keys_of(flats))
    on_screen = axis_columns(flats, plan.sweep.axis_keys)
    for row, flat in zip(rows, flats, strict=True):  # an axis's varying fields share a cell
        row.update({c.name: c.cell(flat) for c in on_screen if c.name not in flat})
    states = Counter(row["state"] for row in rows)
    counts = {state: states[state] for state in dict.fromkeys([*plan.counts, *states])}
    varying = set(varying_keys(rows, columns))
    shown = [c for c in columns if c in ALWAYS_SHOWN or c in varying or c == "slurm"]
    shown += [c.name for c in on_screen]
    return PlanTable(title, (*columns, *axis_keys), axis_keys, tuple(rows), counts, tuple(shown))


def _flat_row(row: dict[str, Any], axis_keys: tuple[str, ...]) -> dict[str, Any]:
    """A plan row with its axes as dotted fields (kept aside under ``_axes`` for their order)."""
    axes = {key: row.pop(key) for key in axis_keys if key in row}
    flat = flat_axes(axes)
    return {**row, **flat, "_axes": flat}


def show_plan(
    table: PlanTable,
    console: Console,
    *,
    show: str = "auto",
    fmt: str = "table",
    quiet: bool = False,
) -> None:
    """Print a plan the way the flags ask.

    Args:
        table: the plan's rows (:func:`plan_table`).
        console: where to print; a terminal gets a rich table, anything else plain text.
        show: ``auto`` (a summary above :data:`SUMMARY_ABOVE` rows), ``all`` or ``summary``.
        fmt: ``table`` (text), ``csv`` or ``json``: every row, machine-readable, nothing else.
        quiet: only the counts line (``table`` format).

    Raises:
        ValueError: an unknown ``show`` or ``fmt``.
    """
    if show not in SHOW_CHOICES:
        raise ValueError(f"--show must be one of {', '.join(SHOW_CHOICES)}, got {show!r}")
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "csv":
        write_csv(table, console.file)
        return
    if fmt == "json":
        write_json(table, console.file)
        return
    if quiet:
        console.print(table.counts_line(), markup=False, highlight=False)
        return
    full = show == "all" or (show == "auto" and len(table.rows) <= SUMMARY_ABOVE)
    rows = list(table.rows) if full else _edge_rows(table.rows)
    lines = [] if full else axis_lines(table)
    if console.is_terminal:
        _print_rich(console, table, rows, lines)
    else:
        _print_plain(console.file, table, rows, lines)


def _edge_rows(rows: tuple[dict[str, Any], ...]) -> list[dict[str, Any] | None]:
    """The first and last :data:`EDGE_ROWS` rows, ``None`` standing for the ones between."""
    if len(rows) <= 2 * EDGE_ROWS:
        return list(rows)
    return [*rows[:EDGE_ROWS], None, *rows[-EDGE_ROWS:]]


def axis_lines(table: PlanTable) -> list[str]:
    """One line per axis: how many distinct values it takes and the first of them, in order."""
    if not table.shown_axes:
        return []
    width = max(len(key) for key in table.shown_axes)
    lines = [f"axes ({len(table.shown_axes)}):"]
    for key in table.shown_axes:
        values = list(dict.fromkeys(cell_text(row.get(key)) for row in table.rows))
        shown = ", ".join(values[:AXIS_VALUES_SHOWN])
        if len(values) > AXIS_VALUES_SHOWN:
            shown += f", … ({len(values) - AXIS_VALUES_SHOWN} more)"
        noun = "value" if len(values) == 1 else "values"
        lines.append(f"  {key:<{width}}  {len(values)} {noun}: {shown}")
    return lines


def _more_text(table: PlanTable, shown: int) -> str:
    hidden = len(table.rows) - shown
    return f"… {hidden:,} more runs (--show all, or --format csv|json > FILE)"


def _print_plain(
    stream: IO[str], table: PlanTable, rows: list[dict[str, Any] | None], lines: list[str]
) -> None:
    """Aligned columns, a dashed rule under the header, no box drawing and no colour."""
    cells = [[cell_text(row.get(c)) for c in table.shown] if row else None for row in rows]
    widths = [len(c) for c in table.shown]
    for line in cells:
        for i, text in enumerate(line or ()):
            widths[i] = max(widths[i], len(text))

    def join(parts: list[str]) -> str:
        return "  ".join(p.ljust(w) for p, w in zip(parts, widths, strict=True)).rstrip()

    out = [table.title, *lines, join(list(table.shown)), join(["-" * w for w in widths])]
    shown = sum(1 for line in cells if line is not None)
    out += [join(line) if line is not None else _more_text(table, shown) for line in cells]
    out.append(table.counts_line())
    stream.write("\n".join(out) + "\n")
    stream.flush()


def _print_rich(
    console: Console, table: PlanTable, rows: list[dict[str, Any] | None], lines: list[str]
) -> None:
    """A rich table on a terminal; a summary's gap is one dimmed row."""
    from rich.table import Table
    from rich.text import Text

    shown = sum(1 for row in rows if row is not None)
    for line in [table.title, *lines]:
        console.print(line, markup=False, highlight=False)
    grid = Table()
    for column in table.shown:
        grid.add_column(column, overflow="fold")
    for row in rows:
        if row is None:
            grid.add_row(*("…" for _ in table.shown), style="dim")
        else:
            # text, not markup: a label such as "[dim 8, groups 2]" stays literal
            grid.add_row(*(Text(cell_text(row.get(c))) for c in table.shown))
    console.print(grid)
    if shown < len(table.rows):
        console.print(_more_text(table, shown), style="dim", markup=False, highlight=False)
    console.print(table.counts_line(), markup=False, highlight=False)


def write_csv(table: PlanTable, stream: IO[str]) -> None:
    """Every row as CSV with a header; lists and dicts as JSON text, dispatch as ``yes`` / blank."""
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(table.columns)
    for row in table.rows:
        writer.writerow([_csv_cell(row.get(c)) for c in table.columns])
    stream.flush()


def _csv_cell(value: Any) -> str:
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True)
    return cell_text(value)


def write_json(table: PlanTable, stream: IO[str]) -> None:
    """One JSON document: title, counts, runs to dispatch and every row with its typed values."""
    document = {
        "title": table.title,
        "counts": table.counts,
        "to_dispatch": table.to_dispatch,
        "columns": list(table.columns),
        "rows": [{c: row.get(c) for c in table.columns} for row in table.rows],
    }
    json.dump(document, stream, default=str)
    stream.write("\n")
    stream.flush()
