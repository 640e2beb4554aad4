"""Command-line options shared by every command that names a sweep.

``sweep``, ``plan``, ``status``, ``compare``, ``report`` and ``tune`` take them from here: one
definition each, so their help and behaviour never drift apart.

Also :func:`load_named_sweep`, the one way a command turns ``FILE --scale S --set K=V`` into a
sweep: a bare name reads ``sweeps/<name>.yaml`` and ``--set`` values are hashed into run ids as if
the file had written them (:mod:`ablate.spec.sweep_target`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ablate.execution.registry import runner_help

if TYPE_CHECKING:
    from ablate.spec.sweep import Sweep

SweepFile = Annotated[
    Path,
    typer.Argument(
        help="Sweep YAML (see sweeps/), or a bare name: table3 is sweeps/table3.yaml.",
        show_default=False,
    ),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Override one field of every run, KEY=VALUE (repeatable), e.g. --set "
        "train.lr=0.01: applied after the file and --scale, hashed into run ids as if written "
        "in the file.",
        show_default=False,
    ),
]
ScaleOpt = Annotated[
    str | None,
    typer.Option(
        "--scale",
        help="Apply a `scales:` entry of the sweep, e.g. `tiny` (tiny twins, synthetic data, CPU).",
    ),
]
RunnerOpt = Annotated[
    str | None,
    typer.Option("--runner", help=runner_help(), show_default="local"),
]


def load_named_sweep(
    sweep_file: Path | str, scale: str | None = None, set_values: list[str] | None = None
) -> Sweep:
    """The sweep a command names: a file or bare name, at a scale, with ``--set`` overrides.

    Raises:
        SpecError: the file is missing (with the nearest sweep name) or invalid.
    """
    from ablate.spec.sweep import load_sweep
    from ablate.spec.sweep_target import parse_overrides

    return load_sweep(sweep_file, scale=scale, overrides=parse_overrides(set_values or []))
