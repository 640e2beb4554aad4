"""One ``ablate ui`` session: start the UI, say where to look, stop all of it on any stop signal.

MLflow takes from seconds to a minute or two to answer on a loaded machine, so the session says
"starting MLflow UI ..." before anything else; then it makes sure an SQLite store is whole
(:func:`ablate.tracking.sqlite_db.ensure_sqlite_db`: MLflow would otherwise create a missing
schema in place, racing any sweep that starts meanwhile). Once the UI answers it prints the UI's
address and, for a sweep, the deep link to the sweep's runs in the training view with its saved
runs table (:func:`ablate.tracking.experiment_view.experiment_url`). SIGINT (Ctrl-C), SIGTERM and
SIGHUP all stop the UI's whole process group (:func:`ablate.tracking.ui.stop_group`), also while
it starts.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from ablate.tracking.config import resolve_tracking_uri
from ablate.tracking.experiment_view import VIEW_KEY_TAG, experiment_name, experiment_url
from ablate.tracking.sqlite_db import ensure_sqlite_db
from ablate.tracking.ui import UiProcess, require_local_store, start_ui

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class UiStopped(Exception):
    """A stop signal arrived (raised in the main thread by the handler)."""


def _raise_stopped(signum: int, frame: FrameType | None) -> None:
    raise UiStopped(signal.Signals(signum).name)


@contextmanager
def stop_signals_raise() -> Iterator[None]:
    """While inside, SIGINT, SIGTERM and SIGHUP raise :class:`UiStopped` (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _raise_stopped) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def sweep_name(target: str) -> str:
    """The sweep a target names: a file, or a bare name (``sweeps/<name>.yaml``), as elsewhere.

    A bare name with no such file is taken as the sweep's own name (its experiment may exist).
    """
    from ablate.spec.sweep import load_sweep
    from ablate.spec.sweep_target import SWEEPS_DIR, resolve_sweep_path

    path = Path(target)
    bare = path.suffix == "" and len(path.parts) == 1
    if bare and not path.is_file() and not (SWEEPS_DIR / f"{target}.yaml").is_file():
        return target
    return load_sweep(resolve_sweep_path(target)).name


def find_experiment(tracking_uri: str, name: str, scale: str | None) -> Any:
    """The sweep's experiment: ``name@scale`` for a scale; else ``name``, else its newest scale."""
    from ablate.tracking.client import mlflow_client

    client = mlflow_client(tracking_uri)
    exact = client.get_experiment_by_name(experiment_name(name, scale))
    if exact is not None or scale is not None:
        return exact
    quoted = name.replace("'", "''")
    found = client.search_experiments(
        filter_string=f"name LIKE '{quoted}@%'", order_by=["last_update_time DESC"], max_results=1
    )
    return found[0] if found else None


def run_ui_session(
    echo: Callable[..., None],
    *,
    target: str | None = None,
    scale: str | None = None,
    tracking_uri: str | None = None,
    host: str = "127.0.0.1",
    port: int | None = None,
    wait_s: float = 180.0,
) -> int:
    """Serve the UI until a stop signal or until it exits; the exit code for ``ablate ui``.

    Args:
        echo: prints one line (``typer.echo``; ``err=True`` for stderr).
        target: a sweep file or sweep name whose runs the printed link opens.
        scale: the sweep's scale (``tiny``: its ``<name>@tiny`` experiment).
        tracking_uri: the store (default ``$MLFLOW_TRACKING_URI`` or ./mlflow.db).
        host: interface to bind.
        port: port (default: a free one).
        wait_s: how long the UI may take to answer.
    """
    name = sweep_name(target) if target else None
    uri = resolve_tracking_uri(tracking_uri)
    require_local_store(uri)
    ui: UiProcess | None = None
    with stop_signals_raise():
        try:
            echo(f"starting MLflow UI for {uri} ...")
            ensure_sqlite_db(uri)  # MLflow never creates the schema in place (a sweep may too)
            ui = start_ui(uri, host=host, port=port)
            ui.wait_ready(wait_s)
            echo(f"MLflow UI: {ui.url}  (Ctrl-C to stop)")
            if name is not None:
                _echo_sweep_link(echo, ui, name, scale)
            while ui.process.poll() is None:
                time.sleep(0.5)
            echo(f"mlflow ui exited with status {ui.process.returncode}", err=True)
            return 1
        except UiStopped as stop:
            echo(f"{stop}: stopping MLflow UI")
            return 0
        finally:
            if ui is not None:
                for sig in STOP_SIGNALS:  # a second Ctrl-C must not cut the group's stop short
                    _ignore(sig)
                ui.stop()


def _ignore(sig: int) -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(sig, signal.SIG_IGN)


def _echo_sweep_link(
    echo: Callable[..., None], ui: UiProcess, name: str, scale: str | None
) -> None:
    experiment = find_experiment(ui.tracking_uri, name, scale)
    if experiment is None:
        wanted = experiment_name(name, scale)
        echo(f"no experiment {wanted!r} in {ui.tracking_uri} yet: run `ablate sweep` first")
        return
    key = experiment.tags.get(VIEW_KEY_TAG)
    echo(f"sweep {experiment.name}: {experiment_url(ui.url, experiment.experiment_id, key)}")
