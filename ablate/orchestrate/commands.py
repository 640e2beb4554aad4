"""``ablate compare FILE`` and ``ablate status`` without a file: the store seen by sweep.

Registered in ``ablate/cli.py`` (``app.command("compare")(compare_command)``); ``ablate status``
calls :func:`show_store_overview` when it is given no sweep file. Both read the results store
only (no MLflow, no torch) and print plain text off a terminal.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from ablate.errors import AblateError
from ablate.orchestrate.cli_options import SetOpt, SweepFile
from ablate.orchestrate.compare import (
    COMPARE_FORMATS,
    FULL_SCALE,
    compare_plan,
    load_sweep_as_stored,
    plain_lines,
    rich_table,
    write_comparison,
)
from ablate.spec.sweep_target import parse_overrides
from ablate.store.layout import default_runs_root
from ablate.tracking.commands import RunsDirOpt

#: Where ``ablate status`` looks for a stored sweep's file: ``sweeps/<name>.yaml``.
SWEEPS_DIR = Path("sweeps")


def compare_command(
    sweep_file: SweepFile,
    scale: Annotated[
        str | None,
        typer.Option(
            "--scale",
            help="The sweep's `scales:` entry the runs were made at (default: the scale with "
            "the most runs in the store).",
            show_default=False,
        ),
    ] = None,
    sort: Annotated[
        str | None,
        typer.Option(
            "--sort",
            help="Order rows by a column (e.g. test/Avg: best first; time, label: ascending).",
            show_default=False,
        ),
    ] = None,
    reverse: Annotated[bool, typer.Option("--reverse", help="Reverse the --sort order.")] = False,
    fmt: Annotated[
        str, typer.Option("--format", help="table (screen), md, csv or json (typed values).")
    ] = "table",
    runs_dir: RunsDirOpt = None,
    set_values: SetOpt = None,
) -> None:
    """One row per run of a sweep: label, the fields that vary, scale, state, accuracies, time.

    \b
    Examples:
      ablate compare sweeps/table3.yaml
      ablate compare sweeps/table3.yaml --sort test/Avg
      ablate compare sweeps/table2.yaml --format csv > table2.csv
    """  # noqa: D301 - click keeps a paragraph after \b (backspace) unwrapped
    from rich.console import Console

    from ablate.orchestrate.orchestrator import plan_sweep
    from ablate.store.results_store import ResultsStore

    if fmt not in COMPARE_FORMATS:
        raise typer.BadParameter(f"choose from {', '.join(COMPARE_FORMATS)}", param_hint="--format")
    store = ResultsStore(runs_dir or default_runs_root())
    overrides = parse_overrides(set_values or [])
    sweep = load_sweep_as_stored(sweep_file, store, scale, overrides=overrides)
    table = compare_plan(plan_sweep(sweep, store), store)
    if sort is not None:
        try:
            table = table.sorted_by(sort, reverse=reverse)
        except ValueError as err:
            raise typer.BadParameter(
                str(err).removeprefix("--sort: "), param_hint="--sort"
            ) from None
    if fmt != "table":
        write_comparison(table, fmt, sys.stdout)
        return
    title = f"{sweep.name} (scale {sweep.scale or FULL_SCALE}): {len(table.rows)} runs"
    console = Console(width=None if sys.stdout.isatty() else 200)
    if console.is_terminal:
        console.print(rich_table(table, title))
    else:
        typer.echo("\n".join([title, *plain_lines(table)]))


@dataclass(frozen=True)
class StoredSweep:
    """One sweep at one scale as the store has it: runs per state."""

    sweep: str
    scale: str
    counts: dict[str, int]
    file: str


def stored_sweep_variants(name: str, sweeps_dir: Path = SWEEPS_DIR) -> list[Any]:
    """Sweep ``name`` at full scale, then at each of its ``scales`` (specs only, no torch).

    Empty when ``sweeps_dir/<name>.yaml`` is missing or no longer loads: the store's view of its
    runs then goes without labels and scales rather than failing.
    """
    from ablate.spec.sweep import load_sweep

    path = sweeps_dir / f"{name}.yaml"
    if not path.is_file():
        return []
    try:
        full = load_sweep(path)
        return [full, *(load_sweep(path, scale=scale) for scale in full.scales)]
    except (OSError, ValueError, AblateError):
        return []


def run_names(sweeps: Any, sweeps_dir: Path = SWEEPS_DIR) -> dict[str, tuple[str, str]]:
    """Run id -> ``(label, scale)`` for the runs of the named sweeps whose file is found.

    A record keeps its run's spec but not the sweep row's label nor the ``--scale`` it was
    planned at; both come from expanding ``sweeps_dir/<name>.yaml`` at each of its scales.
    A sweep file that no longer loads names nothing (the table still lists its runs).
    """
    out: dict[str, tuple[str, str]] = {}
    for name in sorted(set(sweeps)):
        for variant in stored_sweep_variants(name, sweeps_dir):
            for run in variant.runs:
                out.setdefault(run.spec.run_id, (run.label or "", variant.scale or FULL_SCALE))
    return out


def store_overview(store: Any, sweeps_dir: Path = SWEEPS_DIR) -> list[StoredSweep]:
    """Every sweep with records in ``store``, per scale with records, its runs by state.

    A sweep's file is looked up as ``sweeps_dir/<name>.yaml``; without it (or for runs that no
    scale of the file plans any more) the runs are counted by their last attempt's status under
    scale ``?``.
    """
    from ablate.orchestrate.plan import make_plan

    columns = store.attempt_columns()
    seen: dict[tuple[str, str], tuple[int, str]] = {}  # (sweep, run id) -> attempt, status
    for run_id, attempt, status, sweep in zip(
        columns["run_id"], columns["attempt"], columns["status"], columns["sweep"], strict=True
    ):
        kept = seen.get((sweep, run_id))
        if kept is None or (kept[1] != "success" and (status == "success" or attempt > kept[0])):
            seen[sweep, run_id] = (attempt, status)
    last: dict[str, dict[str, str]] = {}  # sweep -> run id -> success, else its last status
    for (sweep, run_id), (_, status) in seen.items():
        last.setdefault(sweep, {})[run_id] = status
    out = []
    for name in sorted(last):
        path = sweeps_dir / f"{name}.yaml"
        unplanned = set(last[name])
        variants = stored_sweep_variants(name, sweeps_dir)
        for variant in variants:
            ids = {run.spec.run_id for run in variant.runs}
            if not ids & set(last[name]):
                continue  # a scale nobody ran
            unplanned -= ids
            plan = make_plan(variant, store)
            counts = {k: v for k, v in plan.counts.items() if v}
            out.append(StoredSweep(name, variant.scale or FULL_SCALE, counts, str(path)))
        if unplanned:
            counts = dict(Counter(last[name][run_id] for run_id in unplanned))
            note = f"{path}: no scale plans these" if variants else f"(no loadable {path})"
            out.append(StoredSweep(name, "?", counts, note))
    return out


def show_store_overview(runs_root: Path) -> int:
    """Print :func:`store_overview` as text; the exit code (1 when the store holds nothing)."""
    from ablate.store.results_store import ResultsStore

    rows = store_overview(ResultsStore(runs_root))
    if not rows:
        typer.echo(
            f"no runs recorded under {runs_root}/; start one with "
            "`ablate sweep sweeps/table3.yaml --scale tiny`"
        )
        return 1
    typer.echo(f"sweeps in {runs_root}/ (`ablate status FILE --scale S` for one sweep's runs):")
    width = max(len(r.sweep) for r in rows)
    scale_width = max(len(r.scale) for r in rows)
    for row in rows:
        total = sum(row.counts.values())
        counts = ", ".join(f"{n} {state}" for state, n in row.counts.items())
        typer.echo(
            f"  {row.sweep:<{width}}  {row.scale:<{scale_width}}  {total} runs: {counts}  "
            f"{row.file}".rstrip()
        )
    return 0
