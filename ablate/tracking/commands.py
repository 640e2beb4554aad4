"""The ``ablate ui`` and ``ablate sync`` commands, and the ``--tracking-uri`` option for ``sweep``.

Register in ``ablate/cli.py``::

    from ablate.tracking.commands import sync_command, ui_command
    app.command("ui")(ui_command)
    app.command("sync")(sync_command)

and build the sweep's tracker with :func:`make_tracker` (``--tracking-uri``, ``--no-tracking``,
``--log-adapter``), passing it to ``run_sweep(..., tracker=...)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ablate.store.layout import default_runs_root

if TYPE_CHECKING:
    from ablate.tracking.mlflow_tracker import MlflowTracker, SummarizeSweep

TrackingUriOpt = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        help="MLflow tracking URI (default $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here).",
        show_default=False,
    ),
]
RunsDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--runs-dir", help="Runs root (default ./runs or $ABLATE_RUNS_DIR).", show_default=False
    ),
]


def make_tracker(
    runs_root: Path,
    tracking_uri: str | None = None,
    *,
    enabled: bool = True,
    log_adapter: bool = False,
    summarize: SummarizeSweep | None = None,
) -> MlflowTracker | None:
    """The tracker ``ablate sweep`` should use: :class:`MlflowTracker`, or ``None`` (no tracking).

    ``None`` lets the sweep loop use its own null tracker, so tracking never imports the
    orchestrator that calls it. ``summarize``: what logs the sweep's summary on the parent run
    (:func:`ablate.report.sweep_summary.summarize_sweep`).
    """
    if not enabled:
        return None
    from ablate.tracking.mlflow_tracker import MlflowTracker

    return MlflowTracker(runs_root, tracking_uri, log_adapter=log_adapter, summarize=summarize)


def ui_command(
    target: Annotated[
        str | None,
        typer.Argument(
            help="Sweep file or name: also print the link to its runs.", show_default=False
        ),
    ] = None,
    scale: Annotated[
        str | None,
        typer.Option("--scale", help="The sweep's scale (tiny: its <name>@tiny experiment)."),
    ] = None,
    tracking_uri: TrackingUriOpt = None,
    host: Annotated[
        str, typer.Option("--host", help="Interface to bind (anything but loopback is warned).")
    ] = "127.0.0.1",
    port: Annotated[
        int | None, typer.Option("--port", help="Port (default: a free one).", show_default=False)
    ] = None,
) -> None:
    """Browse the runs in the MLflow UI (127.0.0.1, a free port); Ctrl-C or SIGTERM stops it.

    Example: ablate ui sweeps/table3.yaml
    """
    from ablate.tracking.ui_session import run_ui_session

    code = run_ui_session(
        typer.echo, target=target, scale=scale, tracking_uri=tracking_uri, host=host, port=port
    )
    if code:
        raise typer.Exit(code)


def sync_command(tracking_uri: TrackingUriOpt = None, runs_dir: RunsDirOpt = None) -> None:
    """Send MLflow what a tracking-server outage or a crash kept from it (safe to repeat).

    Example: ablate sync
    """
    from ablate.tracking.sync import sync

    root = runs_dir or default_runs_root()
    result = sync(root, tracking_uri=tracking_uri)
    if result.nothing_to_do and result.complete:
        typer.echo(f"nothing to sync in {root}")
        return
    if result.files:
        typer.echo(
            f"sent {result.ops} tracking writes ({result.metrics} metrics, "
            f"{result.runs_created} runs created) from {result.files} spool file(s)"
        )
    if result.folder_metrics or result.attempts_reported:
        typer.echo(
            f"sent {result.folder_metrics} step metrics and {result.attempts_reported} ended "
            "attempts from run folders"
        )
    if not result.complete:
        for error in result.errors[:5]:
            typer.echo(f"  {error}", err=True)
        typer.echo(
            f"{len(result.remaining_files)} spool file(s) and {len(result.pending_run_folders)} "
            "run folder(s) not fully sent (server still down?); run `ablate sync` again later",
            err=True,
        )
        raise typer.Exit(1)
