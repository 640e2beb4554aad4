"""``ablate plan FILE``: what each run of a sweep will cost before it is launched.

Per run: trainable parameters (counted on the meta device at real shapes), the GPU-memory estimate
and GPU-hours (the FLOP model of one H100, calibrated from earlier runs of the same model on one
GPU type when the results store has any: :mod:`ablate.train.calibration`), and the sweep's total.
Registered in ``ablate/cli.py``; the columns come from each job kind's ``describe``.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ablate.orchestrate.cli_options import ScaleOpt, SetOpt, SweepFile, load_named_sweep
from ablate.store.layout import default_runs_root
from ablate.tracking.commands import RunsDirOpt


def plan_command(
    sweep_file: SweepFile,
    scale: ScaleOpt = None,
    runs_dir: RunsDirOpt = None,
    gpu: Annotated[
        str | None,
        typer.Option(
            "--gpu",
            help="Calibrate gpu_h from earlier runs on this GPU type (part of the device name, "
            "e.g. H100); default: the GPU most earlier runs of the same model used.",
            show_default=False,
        ),
    ] = None,
    set_values: SetOpt = None,
) -> None:
    """Trainable parameters (meta device, real shapes), GPU memory and GPU-hours per run.

    gpu_h is the FLOP model of one H100, scaled by what earlier runs of the same model measured
    on one GPU type when the results store has any (the lines under the table say which).

    Example: ablate plan sweeps/table3.yaml
    """
    from rich.console import Console
    from rich.table import Table

    from ablate.orchestrate.run_columns import axis_columns, flat_axes
    from ablate.spec.job_kinds import get_job
    from ablate.train.calibration import load_calibration

    console = Console(width=None if sys.stdout.isatty() else 160)  # off a terminal: no folding
    sweep = load_named_sweep(sweep_file, scale, set_values)
    calibration = load_calibration(runs_dir or default_runs_root(), gpu=gpu)
    table = Table(
        title=f"{sweep.name}: {len(sweep.runs)} runs" + (f" (scale {scale})" if scale else "")
    )
    extra_cols: list[str] = []
    rows = []
    hours: list[float] = []
    calibrated = 0
    for run in sweep.runs:
        describe = get_job(run.spec.job).describe
        info = describe(run.spec) if describe is not None else {}
        priced = calibration.estimate(run.spec) if "gpu_h" in info else None
        if priced is not None:
            info["gpu_h"] = round(priced[0], 2)
            hours.append(priced[0])
            calibrated += priced[1] is not None
        extra_cols += [k for k in info if k not in extra_cols]
        rows.append((run, info))
    axes = [flat_axes(run.axes) for run, _ in rows]
    axis_cols = axis_columns(axes, sweep.axis_keys)  # only the fields that differ
    for col in ["run_id", "label", *(c.name for c in axis_cols), *extra_cols]:
        table.add_column(col, overflow="fold")
    for (run, info), flat in zip(rows, axes, strict=True):
        cells = [run.spec.run_id, run.label or ""]
        cells += [column.cell(flat) for column in axis_cols]
        cells += [
            f"{info[c]:,}" if isinstance(info.get(c), int) else str(info.get(c, ""))
            for c in extra_cols
        ]
        table.add_row(*cells)
    console.print(table)
    if hours:  # the sweep's cost before launching it (README "Speed")
        for line in calibration.summary(hours, calibrated):
            console.print(line, markup=False, highlight=False)
