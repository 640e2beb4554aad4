"""The ``ablate ui`` and ``ablate sync`` commands, and the ``--tracking-uri`` option for ``sweep``.

Register in ``ablate/cli.py``::

    from ablate.tracking.commands import sync_command, ui_command
    app.command("ui")(ui_command)
    app.command("sync")(sync_command)

and build the sweep's tracker with :func:`make_tracker` (``--tracking-uri``, ``--no-tracking``,
``--log-adapter``), passing it to ``run_sweep(..., tracker=...)``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from ablate.store.layout import default_runs_root

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
):  # noqa: ANN201 - returns a Tracker or None; typed loosely to keep mlflow lazy
    """The tracker ``ablate sweep`` should use: :class:`MlflowTracker`, or ``None`` (no tracking).

    ``None`` is what the sweep loop's ``tracker`` option takes for "track nothing".
    """
    if not enabled:
        return None
    from ablate.tracking.mlflow_tracker import MlflowTracker

    return MlflowTracker(runs_root, tracking_uri, log_adapter=log_adapter)


def ui_command(
    tracking_uri: TrackingUriOpt = None,
    host: Annotated[
        str, typer.Option("--host", help="Interface to bind (anything but loopback is warned).")
    ] = "127.0.0.1",
    port: Annotated[
        int | None, typer.Option("--port", help="Port (default: a free one).", show_default=False)
    ] = None,
) -> None:
    """Browse the runs in the MLflow UI (127.0.0.1, a free port); Ctrl-C stops it.

    Example: ablate ui
    """
    from ablate.tracking.ui import launch_ui

    ui = launch_ui(tracking_uri, host=host, port=port)
    typer.echo(f"MLflow UI for {ui.tracking_uri}: {ui.url}  (Ctrl-C to stop)")
    try:
        while ui.process.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        ui.stop()


def sync_command(tracking_uri: TrackingUriOpt = None, runs_dir: RunsDirOpt = None) -> None:
    """Send tracking writes kept on disk during a tracking-server outage (safe to repeat).

    Example: ablate sync
    """
    from ablate.tracking.sync import spool_dir_of, sync

    root = runs_dir or default_runs_root()
    result = sync(root, tracking_uri=tracking_uri)
    if result.files == 0:
        typer.echo(f"nothing to sync in {spool_dir_of(root)}")
        return
    typer.echo(
        f"sent {result.ops} tracking writes ({result.metrics} metrics, "
        f"{result.runs_created} runs created) from {result.files} spool file(s)"
    )
    if not result.complete:
        for error in result.errors[:5]:
            typer.echo(f"  {error}", err=True)
        typer.echo(
            f"{len(result.remaining_files)} spool file(s) not fully sent (server still down?); "
            "run `ablate sync` again later",
            err=True,
        )
        raise typer.Exit(1)
