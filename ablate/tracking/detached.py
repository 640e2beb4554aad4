"""Tracking for attempts no orchestrator waits for (SLURM tasks): entry points for the task.

A detached sweep submits and returns, so the orchestrator's ``on_attempt_end`` never runs for its
attempts. Everything needed to finish the job later is on disk: the child run chosen at submission
(in the task's environment and the run folder's ``mlflow.json``) and the attempt records in the
store. The task calls :func:`report_attempt_start` when it starts an attempt (the child run is set
back to RUNNING and a :class:`~ablate.tracking.run_sync.LiveSync` in the task sends the step
metrics while the worker runs) and :func:`report_ended_attempts` after it; ``ablate status`` and
``ablate sweep --wait`` call the latter for runs whose task died before it could. Both end in the
one idempotent :func:`~ablate.tracking.run_sync.sync_run_folder`, so nothing is sent twice
whoever calls first. Tracking never fails a run: writes a server that is down refuses wait for
``ablate sync``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ablate.tracking.client import TrackingClient
from ablate.tracking.config import RUN_ID_ENV, SPOOL_DIR_NAME, TRACKING_URI_ENV
from ablate.tracking.run_sync import (
    LiveSync,
    note_attempt_started,
    sync_run_folder,
    synced_attempts,
)

if TYPE_CHECKING:
    from ablate.store.results_store import ResultsStore

_LIVE: dict[Path, LiveSync] = {}  # this task's live syncs, by run folder


def tracking_of(env: Mapping[str, str]) -> dict[str, str] | None:
    """``{"tracking_uri", "mlflow_run_id"}`` from a task's environment (``None``: untracked)."""
    uri, child = env.get(TRACKING_URI_ENV), env.get(RUN_ID_ENV)
    if not uri or not child:
        return None
    return {"tracking_uri": uri, "mlflow_run_id": child}


def reported_attempts(run_dir: Path) -> set[int]:
    """The attempts of a run whose end MLflow already has."""
    return synced_attempts(Path(run_dir))


def _client(runs_root: Path, tracking_uri: str) -> TrackingClient:
    return TrackingClient(tracking_uri, Path(runs_root).resolve() / SPOOL_DIR_NAME)


def report_queued(runs_root: Path, trackings: list[Mapping[str, str]]) -> None:
    """Mark submitted runs SCHEDULED in MLflow (tag ``ablate.status: queued``) until they start.

    Without it the runs of a sweep queued for hours look RUNNING in the MLflow UI. One client
    for all of them; :func:`report_attempt_start` sets each RUNNING when its task starts.
    """
    clients: dict[str, TrackingClient] = {}
    for tracking in trackings:
        uri = tracking["tracking_uri"]
        if uri not in clients:
            clients[uri] = _client(runs_root, uri)
        clients[uri].update_run(tracking["mlflow_run_id"], "SCHEDULED")
        clients[uri].log_batch(tracking["mlflow_run_id"], tags={"ablate.status": "queued"})


def report_attempt_start(
    run_dir: Path, runs_root: Path, attempt: int, tracking: Mapping[str, str]
) -> None:
    """Set the run's MLflow child back to RUNNING for ``attempt``, and sync it while it runs.

    Args:
        run_dir: the run folder.
        runs_root: the runs root (its ``.tracking-spool/`` takes writes while the server is down).
        attempt: the attempt starting now.
        tracking: from :func:`tracking_of`.
    """
    run_dir = Path(run_dir)
    child = tracking["mlflow_run_id"]
    note_attempt_started(run_dir, child, attempt)
    client = _client(runs_root, tracking["tracking_uri"])
    client.update_run(child, "RUNNING")
    client.log_batch(child, tags={"ablate.attempt": str(attempt), "ablate.status": "running"})
    live = _LIVE.pop(run_dir, None)
    if live is not None:
        live.close()
    live = _LIVE[run_dir] = LiveSync(client)
    live.add(run_dir.name, run_dir)


def report_ended_attempts(
    store: ResultsStore, run_dir: Path, tracking: Mapping[str, str]
) -> list[int]:
    """Bring the run's MLflow child up to date, ending it for every recorded, unreported attempt.

    Returns:
        The attempt numbers reported now (empty when none, or another process is syncing).
    """
    run_dir = Path(run_dir)
    live = _LIVE.pop(run_dir, None)
    if live is not None:
        live.close()
    client = _client(store.root, tracking["tracking_uri"])
    records = store.attempts_of(run_dir.name)
    return sync_run_folder(run_dir, client, records=records, wait=False).reported
