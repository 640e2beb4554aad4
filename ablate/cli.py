"""The ``ablate`` command line: sweep, status, runs, plan, score.

Each command is a thin shell over a module that does the work (spec expansion, orchestration,
store, scoring), so everything it does is importable and tested without the CLI. User errors
(:class:`~ablate.errors.AblateError`) print one message and exit non-zero, never a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from ablate.errors import AblateError
from ablate.evaluation.commands import score_command
from ablate.orchestrate.cli_options import (
    RunnerOpt,
    ScaleOpt,
    SetOpt,
    SweepFile,
    load_named_sweep,
)
from ablate.orchestrate.commands import compare_command
from ablate.orchestrate.plan_command import plan_command
from ablate.report.commands import report_command
from ablate.tracking.commands import RunsDirOpt, TrackingUriOpt, sync_command, ui_command
from ablate.tune.commands import tune_command

app = typer.Typer(
    name="ablate",
    help=(
        "Ablation sweeps for parameter-efficient vision-language tuning.\n\n"
        "\b\nExamples:\n"
        "  ablate sweep sweeps/table3.yaml --scale tiny   # Table 3 on tiny twins, on a CPU\n"
        "  ablate sweep sweeps/table2.yaml --dry-run      # show the plan, run nothing\n"
        "  ablate status sweeps/table3.yaml               # done, failed, left\n"
        "  ablate compare sweeps/table3.yaml --sort test/Avg   # one row per run, results\n"
        "  ablate plan sweeps/table3.yaml                 # trainable params, GPU memory\n"
        "  ablate report sweeps/table3.yaml --scale tiny  # Table 3 from the results store\n"
        "  ablate tune sweeps/tune_ba.yaml --scale tiny --trials 6   # Optuna search\n"
        "  ablate ui sweeps/table3.yaml                   # its runs in the MLflow UI\n"
        "  ablate score preds.json --data DIR --split test"
    ),
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
# not on a terminal (logs, CI): wide enough that run ids and axis values never fold
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True)


def _runs_root(runs_dir: Path | None) -> Path:
    from ablate.store.layout import default_runs_root

    return runs_dir if runs_dir is not None else default_runs_root()


def _cell(value: Any) -> str:
    """Table text for a value; missing values (None, pandas NaN) are blank."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(value)


def _print_rows(title: str, rows: list[dict[str, Any]], columns: list[str]) -> None:
    """A rich table of ``rows`` (plain text when not on a terminal)."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(col, overflow="fold")
    for row in rows:  # text, not markup: a label such as "[lr 0.01]" stays literal
        table.add_row(*(Text(_cell(row.get(c))) for c in columns))
    console.print(table)


ShowOpt = Annotated[
    str,
    typer.Option(
        "--show", help="Plan rows to print: auto (a summary above 40 runs), all, summary."
    ),
]
FormatOpt = Annotated[
    str,
    typer.Option(
        "--format",
        help="table (text), or csv / json: every plan row, machine-readable, for a "
        "file (`--format csv > plan.csv`).",
    ),
]


def _show_plan(
    plan: Any,
    title: str,
    slurm: Any = None,
    *,
    show: str = "auto",
    fmt: str = "table",
    quiet: bool = False,
) -> None:
    """The plan as the flags ask: summary or full table, CSV or JSON, or only its counts."""
    from ablate.orchestrate.plan_view import plan_table, show_plan

    show_plan(plan_table(plan, title, slurm), console, show=show, fmt=fmt, quiet=quiet)


def _check_view_flags(show: str, fmt: str) -> None:
    from ablate.orchestrate.plan_view import FORMATS, SHOW_CHOICES

    if show not in SHOW_CHOICES:
        raise typer.BadParameter(f"choose from {', '.join(SHOW_CHOICES)}", param_hint="--show")
    if fmt not in FORMATS:
        raise typer.BadParameter(f"choose from {', '.join(FORMATS)}", param_hint="--format")


@app.command()
def sweep(
    sweep_file: SweepFile,
    scale: ScaleOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan, run nothing.")] = False,
    runner: RunnerOpt = None,
    max_parallel: Annotated[
        int | None,
        typer.Option("--max-parallel", min=1, help="At most N jobs at once.", show_default=False),
    ] = None,
    retries: Annotated[
        int,
        typer.Option("--retries", min=0, help="Failed attempts allowed per run beyond the first."),
    ] = 1,
    force: Annotated[
        bool, typer.Option("--force", help="Rerun runs that are already done.")
    ] = False,
    runs_dir: RunsDirOpt = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Only the plan's counts; no progress display.")
    ] = False,
    show: ShowOpt = "auto",
    fmt: FormatOpt = "table",
    tracking_uri: TrackingUriOpt = None,
    no_tracking: Annotated[
        bool, typer.Option("--no-tracking", help="Do not log to MLflow.")
    ] = False,
    log_adapter: Annotated[
        bool,
        typer.Option("--log-adapter", help="Upload trained adapter weights as MLflow artifacts."),
    ] = False,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="With a SLURM runner: stay until every job has ended, then exit 0 only "
            "if every run succeeded (other runners always wait).",
        ),
    ] = False,
    poll_s: Annotated[
        float,
        typer.Option("--poll-s", min=1.0, help="With --wait: seconds between looks at SLURM."),
    ] = 30.0,
    no_preflight: Annotated[
        bool,
        typer.Option(
            "--no-preflight",
            help="Dispatch without first checking every run's data folder, weights and GPU.",
        ),
    ] = False,
    set_values: SetOpt = None,
) -> None:
    """Expand a sweep, show the plan, dispatch its runs; rerunning resumes.

    Done runs are skipped, failed ones retried within the budget. Ctrl-C stops the running jobs,
    records them as cancelled and exits 130; the next invocation picks up where it stopped.
    With `--runner slurm` the runs go to SLURM as job arrays and the command returns (follow
    them with `ablate status`), unless `--wait` is given.

    \b
    Examples:
      ablate sweep sweeps/table3.yaml --scale tiny
      ablate sweep sweeps/table2.yaml --dry-run
      ablate sweep sweeps/big.yaml --dry-run --format csv > plan.csv
      ablate sweep sweeps/table1.yaml --runner local --max-parallel 2 --retries 2
      ablate sweep sweeps/table3.yaml --runner slurm --wait
      ablate sweep table3 --scale tiny --set train.epochs=2
    """  # noqa: D301 - click keeps a paragraph after \b (backspace) unwrapped
    from ablate.execution.registry import make_executor
    from ablate.execution.runner_profile import load_runner_profile
    from ablate.execution.slurm.watch import reattach_if_submitted
    from ablate.orchestrate.orchestrator import plan_sweep
    from ablate.store.results_store import ResultsStore

    _check_view_flags(show, fmt)
    if fmt != "table" and not dry_run:
        raise typer.BadParameter(
            "writes the plan for a file; use it with --dry-run", param_hint="--format"
        )
    spec = load_named_sweep(sweep_file, scale, set_values)
    profile = load_runner_profile(runner)
    store = ResultsStore(_runs_root(runs_dir))
    executor = make_executor(profile, store, max_parallel=max_parallel)
    # detached jobs (SLURM) that died without a record are recorded first (the budget counts them)
    slurm = reattach_if_submitted(store, spec.name) if executor.detachable else None
    _print_slurm_catch_up(slurm)
    the_plan = plan_sweep(spec, store, retries=retries, force=force)
    _show_plan(
        the_plan,
        f"sweep {spec.name}"
        + (f" (scale {scale})" if scale else "")
        + f" -> {store.root}/{spec.name}/",
        slurm,
        show=show,
        fmt=fmt,
        quiet=quiet,
    )
    _print_exhausted_hint(the_plan)
    if dry_run:
        return
    from ablate.orchestrate.orchestrator import run_sweep  # what --dry-run never needs
    from ablate.orchestrate.preflight import preflight
    from ablate.orchestrate.progress import SWEEP_LOG, make_progress
    from ablate.tracking.commands import make_tracker

    if not no_preflight:
        preflight(the_plan.to_dispatch(), profile)  # every problem at once, nothing dispatched
    from ablate.report.sweep_summary import summarize_sweep

    tracker = make_tracker(
        store.root,
        tracking_uri,
        enabled=not no_tracking,
        log_adapter=log_adapter,
        summarize=summarize_sweep,
    )
    # the plan is printed above; library messages go to the sweep's log, not the live display
    progress = make_progress(
        quiet=quiet, announce=False, log_file=store.layout.sweep_dir(spec.name) / SWEEP_LOG
    )
    try:
        result = run_sweep(
            spec,
            executor=executor,
            store=store,
            retries=retries,
            max_parallel=max_parallel,
            force=force,
            progress=progress,
            tracker=tracker,
            timeout_s=profile.timeout_s,
            grace_s=profile.grace_s,
            detach=executor.detachable,
        )
    finally:
        progress.close()
    if wait and executor.detachable and not result.interrupted:
        raise typer.Exit(_wait_for_detached(spec, store, retries, poll_s, quiet))
    raise typer.Exit(result.exit_code)


def _wait_for_detached(spec: Any, store: Any, retries: int, poll_s: float, quiet: bool) -> int:
    """``--wait`` on a SLURM sweep: follow the jobs until they end; the sweep's exit code."""
    from ablate.execution.slurm.watch import wait_for_slurm_sweep
    from ablate.orchestrate.orchestrator import plan_sweep
    from ablate.orchestrate.outcomes import EXIT_INCOMPLETE, EXIT_INTERRUPTED, EXIT_OK

    last = [""]

    def show(state: Any) -> None:
        _print_slurm_catch_up(state)
        line = state.summary()
        if not quiet and line != last[0]:
            console.print(f"[slurm] {spec.name}: {line}", markup=False, highlight=False)
            last[0] = line

    try:
        wait_for_slurm_sweep(store, spec.name, poll_s=poll_s, on_poll=show)
    except KeyboardInterrupt:
        err_console.print(
            f"stopped waiting; the SLURM jobs go on: `ablate status {spec.path}` follows them"
        )
        return EXIT_INTERRUPTED
    final = plan_sweep(spec, store, retries=retries)
    left = [e for e in final.entries if e.history.succeeded_in is None]
    if not quiet:
        counts = ", ".join(f"{n} {state}" for state, n in final.counts.items() if n)
        console.print(
            f"[slurm] {spec.name}: every job ended; {counts}", markup=False, highlight=False
        )
    return EXIT_INCOMPLETE if left else EXIT_OK


def _print_exhausted_hint(plan: Any) -> None:
    """To stderr (the plan's counts stay stdout's last line): which flag reruns exhausted runs."""
    from ablate.orchestrate.plan import exhausted_hint

    hint = exhausted_hint(plan)
    if hint:
        err_console.print(hint, markup=False, highlight=False, soft_wrap=True)


def _print_slurm_catch_up(state: Any) -> None:
    """What one look at a SLURM sweep (``None``: none) recorded or sent to MLflow."""
    if state is None:
        return
    for record in state.lost:
        console.print(
            f"{record.run_id} attempt {record.attempt}: SLURM job ended without a "
            f"record; recorded {record.status.value} ({record.failure_reason})",
            markup=False,
            highlight=False,
        )
    for run_id, attempts in state.reported.items():
        console.print(
            f"{run_id}: attempt(s) {', '.join(map(str, attempts))} sent to MLflow",
            markup=False,
            highlight=False,
        )


@app.command()
def status(
    sweep_file: Annotated[
        Path | None,
        typer.Argument(
            help="Sweep YAML; without it, every sweep in the store with its runs per scale.",
            show_default=False,
        ),
    ] = None,
    scale: Annotated[
        str | None,
        typer.Option(
            "--scale",
            help="The sweep's `scales:` entry to show (default: the scale with the most runs "
            "in the store).",
            show_default=False,
        ),
    ] = None,
    runs_dir: RunsDirOpt = None,
    retries: Annotated[
        int, typer.Option("--retries", min=0, help="Retry budget to judge failed runs against.")
    ] = 1,
    show: ShowOpt = "auto",
    fmt: FormatOpt = "table",
    set_values: SetOpt = None,
) -> None:
    """What ran, what failed and why, what is left, for one sweep (or every sweep in the store).

    \b
    Examples:
      ablate status                         # every sweep in the store, runs per scale
      ablate status sweeps/table3.yaml      # its runs at the scale they were made at
      ablate status sweeps/table3.yaml --scale tiny
    """  # noqa: D301 - click keeps a paragraph after \b (backspace) unwrapped
    from ablate.execution.slurm.watch import reattach_if_submitted
    from ablate.orchestrate.commands import show_store_overview
    from ablate.orchestrate.compare import load_sweep_as_stored
    from ablate.orchestrate.orchestrator import plan_sweep
    from ablate.orchestrate.plan_view import SUMMARY_ABOVE
    from ablate.spec.sweep_target import parse_overrides
    from ablate.store.results_store import ResultsStore

    _check_view_flags(show, fmt)
    if sweep_file is None:
        raise typer.Exit(show_store_overview(_runs_root(runs_dir)))
    store = ResultsStore(_runs_root(runs_dir))
    spec = load_sweep_as_stored(
        sweep_file, store, scale, overrides=parse_overrides(set_values or [])
    )
    scale = spec.scale
    slurm = reattach_if_submitted(store, spec.name)  # SLURM is asked only if it ran the sweep
    _print_slurm_catch_up(slurm)
    the_plan = plan_sweep(spec, store, retries=retries)
    _show_plan(
        the_plan,
        f"status of {spec.name}" + (f" (scale {scale})" if scale else ""),
        slurm,
        show=show,
        fmt=fmt,
    )
    if fmt != "table":
        return
    _print_exhausted_hint(the_plan)
    failed = [e for e in the_plan.entries if e.state.value in ("failed", "exhausted")]
    shown = failed if show == "all" else failed[:SUMMARY_ABOVE]
    for entry in shown:
        last = store.attempts_of(entry.run_id)[-1]
        reason = (last.failure_reason or "").strip().splitlines()
        console.print(
            f"{entry.run_id} {entry.state.value}: "
            f"{last.failure_kind.value if last.failure_kind else ''} "
            f"{reason[0] if reason else ''} (log: {last.run_dir}/worker.log)",
            markup=False,
            highlight=False,
        )
    if len(shown) < len(failed):
        console.print(
            f"… {len(failed) - len(shown):,} more failed runs (--show all)",
            markup=False,
            highlight=False,
        )


@app.command()
def runs(
    runs_dir: RunsDirOpt = None,
    sweep_name: Annotated[
        str | None, typer.Option("--sweep", help="Only this sweep's attempts.")
    ] = None,
    status_filter: Annotated[
        str | None,
        typer.Option(
            "--status", help="Only attempts with this status: success, failed, cancelled."
        ),
    ] = None,
    limit: Annotated[int, typer.Option(help="Show the last N attempts.")] = 50,
) -> None:
    """Every attempt in the results store, newest last, with its row label and scale.

    Label and scale come from the sweep's file (sweeps/NAME.yaml) when it is there.
    Example: ablate runs --sweep table3 --status failed
    """
    from ablate.orchestrate.commands import run_names
    from ablate.orchestrate.run_columns import headline_text
    from ablate.store.results_store import ResultsStore

    frame = ResultsStore(_runs_root(runs_dir)).dataframe()
    if frame.empty:
        console.print(f"no records under {_runs_root(runs_dir)}")
        return
    if sweep_name:
        frame = frame[frame["sweep"] == sweep_name]
    if status_filter:
        frame = frame[frame["status"] == status_filter]
    frame = frame.sort_values("ended_at").tail(limit)
    names = run_names(frame["sweep"])
    rows = []
    for rec in frame.to_dict("records"):
        dur = rec.get("duration_s")
        label, scale = names.get(rec["run_id"], ("", ""))
        rows.append(
            {
                **rec,
                "label": label,
                "scale": scale,
                "duration": f"{dur:.1f}s" if isinstance(dur, float) else "",
                "headline": headline_text(rec.get("metrics")).replace(" ", "=", 1),
            }
        )
    columns = ["run_id", "sweep", "label", "scale", "attempt", "status", "failure_kind"]
    _print_rows(f"{len(rows)} attempts", rows, [*columns, "duration", "headline", "host"])


app.command("plan")(plan_command)
app.command("score")(score_command)
app.command("report")(report_command)
app.command("compare")(compare_command)
app.command("ui")(ui_command)
app.command("sync")(sync_command)
app.command("tune")(tune_command)


def main() -> None:
    """Console-script entry: run the app, turning user errors into one line and exit code."""
    try:
        app()
    except AblateError as err:
        err_console.print(f"error: {err}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(err.exit_code)
    except (FileNotFoundError, ValueError) as err:
        # raised by loaders with full messages (file, key, value); keep them traceback-free
        err_console.print(f"error: {err}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except OSError as err:
        # the machine, not the input: a full disk, a permission, a vanished mount
        err_console.print(f"error: {err}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
