"""``ablate score PREDICTIONS --data DIR``: the official ScienceQA columns of any predictions file.

Registered in ``ablate/cli.py``. Scores predictions from ablate's runs, the seed code's
``{"results": {...}}`` files or a plain ``{pid: index}`` map, with the official scoring rules
(:mod:`ablate.evaluation.scoring`); bad files are refused with the path and the reason.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer


def score_command(
    predictions: Annotated[
        Path,
        typer.Argument(
            help="Predictions: {pid: index} JSON, the "
            'official {"results": {...}} JSON, or JSONL '
            "with raw outputs.",
            show_default=False,
        ),
    ],
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            help="ScienceQA folder (official layout or HF parquet export).",
            show_default=False,
        ),
    ],
    split: Annotated[str, typer.Option(help="Split to score against.")] = "test",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Score a predictions file with the official ScienceQA columns.

    Example: ablate score runs/table3/<run_id>/predictions_test.jsonl --data data/scienceqa
    """
    import json

    from rich.console import Console

    from ablate.evaluation.predictions import score_predictions_file

    console = Console(width=None if sys.stdout.isatty() else 160)
    report = score_predictions_file(predictions, data, split)
    if as_json:
        console.print_json(json.dumps(report.to_dict()))
    else:
        console.print(report.to_markdown(), markup=False, highlight=False)
