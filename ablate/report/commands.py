"""The ``ablate report`` command, as a plain typed function the CLI registers.

Register it in ``ablate/cli.py`` with ``app.command("report")(report_command)``. It prints the
markdown of each table (when markdown is among the formats) and the files written; user errors
(missing spec or sweep, malformed YAML) surface as :class:`~ablate.errors.AblateError` or
``FileNotFoundError``/``ValueError`` with one clear message for the CLI to map to an exit code.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

from ablate.orchestrate.cli_options import SetOpt
from ablate.report.render import DEFAULT_OUT_DIR, DEFAULT_REPORTS_DIR, FORMATS
from ablate.spec.sweep_target import parse_overrides
from ablate.store.layout import default_runs_root
from ablate.tracking.commands import RunsDirOpt


def report_command(
    target: Annotated[
        str | None,
        typer.Argument(
            help="Sweep YAML, report spec (reports/*.yaml) or a bare name such as table3; "
            "default: every spec in reports/.",
            show_default=False,
        ),
    ] = None,
    fmt: Annotated[
        list[str] | None,
        typer.Option(
            "--format",
            "-f",
            help=f"Output format, repeatable: {', '.join(FORMATS)} or all (default md).",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path, typer.Option("--out", help="Output folder for tables and figures.")
    ] = DEFAULT_OUT_DIR,
    runs_dir: RunsDirOpt = None,
    scale: Annotated[
        str | None,
        typer.Option(
            "--scale", help="Report only this scale's runs (default: the scale with most results)."
        ),
    ] = None,
    reports_dir: Annotated[
        Path, typer.Option("--reports-dir", help="Where report specs are looked up.")
    ] = DEFAULT_REPORTS_DIR,
    plots: Annotated[
        bool, typer.Option("--plots/--no-plots", help="Draw the figures (PNG and SVG).")
    ] = True,
    speed: Annotated[
        bool,
        typer.Option(
            "--speed",
            help="Add measured GPU-hours, samples/s and MFU per row (a spec's own `speed:` "
            "columns win).",
        ),
    ] = False,
    set_values: SetOpt = None,
) -> None:
    """Tables 1-3 from the results store, the paper's values beside ours (never needs MLflow).

    A sweep with no successful run in the store writes nothing and says which command fills it;
    the exit code is 1 when no report had a run.

    Example: ablate report sweeps/table3.yaml --format md --format latex --speed
    """
    from ablate.report.build import render_report  # heavy: only when the command runs
    from ablate.report.render import to_markdown

    formats = tuple(fmt or ["md"])
    outputs = render_report(
        target,
        runs_root=runs_dir or default_runs_root(),
        fmt=formats,
        out_dir=out,
        reports_dir=reports_dir,
        scale=scale,
        plots=plots,
        speed=speed,
        overrides=parse_overrides(set_values or []),
    )
    root = runs_dir or default_runs_root()
    for output in outputs:
        if not output.has_results:
            fill = fill_command(output.spec.sweep_path, scale, set_values)
            typer.echo(
                f"[ablate report] {output.spec.name}: no successful runs in {root}/ yet; fill "
                f"it with `{fill}` (nothing written)",
                err=True,
            )
            continue
        if "md" in formats or "all" in formats:
            typer.echo(to_markdown(output.table))
        for path in output.files:
            typer.echo(f"wrote {path}")
    if not any(output.has_results for output in outputs):
        raise typer.Exit(1)


def fill_command(sweep_path: Path, scale: str | None, set_values: list[str] | None = None) -> str:
    """The ``ablate sweep`` that fills a report: ``--scale tiny`` when the sweep has that scale."""
    from ablate.spec.sweep import load_sweep

    if scale is None and "tiny" in load_sweep(sweep_path).scales:
        scale = "tiny"  # the scale that runs anywhere (tiny twins on a CPU)
    try:
        shown = sweep_path.resolve().relative_to(Path.cwd())
    except ValueError:
        shown = sweep_path
    sets = "".join(f" --set {shlex.quote(item)}" for item in set_values or [])
    return f"ablate sweep {shown}" + (f" --scale {scale}" if scale else "") + sets
