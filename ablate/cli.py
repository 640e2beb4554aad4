"""The ``ablate`` command line: sweep, status, runs, plan, score.

Each command is a thin shell over a module that does the work (spec expansion, orchestration,
store, scoring), so everything it does is importable and tested without the CLI. User errors
(:class:`~ablate.errors.AblateError`) print one message and exit non-zero, never a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ablate.errors import AblateError

app = typer.Typer(
    name="ablate",
    help=(
        "Ablation sweeps for parameter-efficient vision-language tuning.\n\n"
        "\b\nExamples:\n"
        "  ablate sweep sweeps/table3.yaml --scale tiny   # Table 3 on tiny twins, on a CPU\n"
        "  ablate sweep sweeps/table2.yaml --dry-run      # show the plan, run nothing\n"
        "  ablate status sweeps/table3.yaml               # done, failed, left\n"
        "  ablate plan sweeps/table3.yaml                 # trainable params, GPU memory\n"
        "  ablate score preds.json --data DIR --split test"
    ),
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

SweepFile = Annotated[Path, typer.Argument(help="Sweep YAML (see sweeps/).", show_default=False)]
ScaleOpt = Annotated[
    str | None,
    typer.Option("--scale", help="Apply a `scales:` entry of the sweep, e.g. `tiny` (tiny twins, "
                 "synthetic data, CPU)."),
]
RunsDirOpt = Annotated[
    Path | None,
    typer.Option("--runs-dir", help="Runs root (default ./runs or $ABLATE_RUNS_DIR).",
                 show_default=False),
]


@app.command()
def plan(sweep_file: SweepFile, scale: ScaleOpt = None) -> None:
    """Trainable parameters (meta device, real shapes) and a GPU memory estimate per run.

    Example: ablate plan sweeps/table3.yaml
    """
    from rich.table import Table

    from ablate.jobs.registry import get_job
    from ablate.spec.sweep import load_sweep

    sweep = load_sweep(sweep_file, scale=scale)
    table = Table(title=f"{sweep.name}: {len(sweep.runs)} runs" + (f" (scale {scale})"
                                                                    if scale else ""))
    extra_cols: list[str] = []
    rows = []
    for run in sweep.runs:
        describe = get_job(run.spec.job).describe
        info = describe(run.spec) if describe is not None else {}
        extra_cols += [k for k in info if k not in extra_cols]
        rows.append((run, info))
    for col in ["run_id", "label", *sweep.axis_keys, *extra_cols]:
        table.add_column(col, overflow="fold")
    for run, info in rows:
        cells = [run.spec.run_id, run.label or ""]
        cells += [str(run.axes.get(k, "")) for k in sweep.axis_keys]
        cells += [f"{info[c]:,}" if isinstance(info.get(c), int) else str(info.get(c, ""))
                  for c in extra_cols]
        table.add_row(*cells)
    console.print(table)


@app.command()
def score(
    predictions: Annotated[Path, typer.Argument(help="Predictions: {pid: index} JSON, the "
                                                "official {\"results\": {...}} JSON, or JSONL "
                                                "with raw outputs.", show_default=False)],
    data: Annotated[Path, typer.Option("--data", help="ScienceQA folder (official layout or "
                                       "HF parquet export).", show_default=False)],
    split: Annotated[str, typer.Option(help="Split to score against.")] = "test",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Score a predictions file with the official ScienceQA columns.

    Example: ablate score runs/table3/<run_id>/predictions_test.jsonl --data data/scienceqa
    """
    import json

    from ablate.evaluation.predictions import score_predictions_file

    report = score_predictions_file(predictions, data, split)
    if as_json:
        console.print_json(json.dumps(report.to_dict()))
    else:
        console.print(report.to_markdown(), markup=False, highlight=False)


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


if __name__ == "__main__":
    main()
