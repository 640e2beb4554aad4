"""Tracking for attempts no orchestrator waits for (SLURM tasks): entry points for the task.

A detached sweep submits and returns, so the orchestrator's ``on_attempt_end`` never runs for its
attempts. Everything needed to finish the job later is on disk: the child run chosen at submission
(in the task's environment and the run folder's ``mlflow.json``) and the attempt records in the
store. The task calls :func:`report_attempt_start` when it starts an attempt and
:func:`report_ended_attempts` after it; ``ablate status`` and ``ablate sweep --wait`` call the
latter for runs whose task died before it could. All of it goes through the one idempotent
:func:`~ablate.tracking.run_sync.sync_run_folder`, so nothing is sent twice whoever calls first.

The start costs the attempt nothing: a :class:`TaskTracking` thread in the task reports the
attempts that ended before (a requeued task's preempted one), sets the child run back to RUNNING
and syncs the step metrics while the worker runs, so importing MLflow (seconds) never delays the
worker inside a SLURM time limit. Tracking never fails a run: writes a server that is down
refuses wait for ``ablate sync``.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Mapping
from pathlib import Path

from ablate.store.results_store import ResultsStore
from ablate.tracking.client import TrackingClient
from ablate.tracking.config import RUN_ID_ENV, SPOOL_DIR_NAME, TRACKING_URI_ENV, public_uri
from ablate.tracking.run_sync import (
    LIVE_EVERY_S,
    note_attempt_started,
    sync_run_folder,
    synced_attempts,
)

STOP_TIMEOUT_S = 300.0  # the longest an ending task waits for its tracking thread
_LIVE: dict[Path, TaskTracking] = {}  # this task's tracking threads, by run folder


def tracking_of(env: Mapping[str, str], *, public: bool = False) -> dict[str, str] | None:
    """``{"tracking_uri", "mlflow_run_id"}`` from a task's environment (``None``: untracked).

    Args:
        env: the task's environment.
        public: mask the URI's password (:func:`~ablate.tracking.config.public_uri`), for what
            is written to disk or printed.
    """
    uri, child = env.get(TRACKING_URI_ENV), env.get(RUN_ID_ENV)
    if not uri or not child:
        return None
    return {"tracking_uri": public_uri(uri) if public else uri, "mlflow_run_id": child}


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


class TaskTracking:
    """A SLURM task's tracking of one attempt, in a daemon thread, in this order.

    1. report the run's attempts that ended and were not reported (a preempted one, KILLED);
    2. set the child run RUNNING (tags ``ablate.attempt``, ``ablate.status: running``);
    3. sync the run folder every ``every_s`` seconds until :meth:`stop`.

    Args:
        runs_root: the runs root (the store's records, the spool).
        run_dir: the run folder.
        attempt: the attempt starting now.
        tracking: from :func:`tracking_of`.
        every_s: seconds between live syncs.
    """

    def __init__(
        self,
        runs_root: Path,
        run_dir: Path,
        attempt: int,
        tracking: Mapping[str, str],
        every_s: float = LIVE_EVERY_S,
    ) -> None:
        self.runs_root = Path(runs_root)
        self.run_dir = Path(run_dir)
        self.attempt = attempt
        self.tracking = dict(tracking)
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ablate-task-sync", daemon=True)

    def start(self) -> TaskTracking:
        """Start the thread."""
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            client = _client(self.runs_root, self.tracking["tracking_uri"])
            records = ResultsStore(self.runs_root).attempts_of(self.run_dir.name)
            sync_run_folder(self.run_dir, client, records=records)
            child = self.tracking["mlflow_run_id"]
            client.update_run(child, "RUNNING")
            tags = {"ablate.attempt": str(self.attempt), "ablate.status": "running"}
            client.log_batch(child, tags=tags)
            while not self._stop.wait(self.every_s):
                sync_run_folder(self.run_dir, client, wait=False)
        except Exception as exc:  # noqa: BLE001 - tracking must never fail a run
            print(f"[ablate slurm] tracking: {exc!r}", file=sys.stderr, flush=True)

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Stop the live syncs, after steps 1 and 2 are done (so the end is reported last)."""
        self._stop.set()
        self._thread.join(timeout_s)


def report_attempt_start(
    run_dir: Path, runs_root: Path, attempt: int, tracking: Mapping[str, str]
) -> None:
    """Note the attempt's start in the run folder and start its :class:`TaskTracking` thread.

    Args:
        run_dir: the run folder.
        runs_root: the runs root (its ``.tracking-spool/`` takes writes while the server is down).
        attempt: the attempt starting now.
        tracking: from :func:`tracking_of`.
    """
    run_dir = Path(run_dir)
    note_attempt_started(run_dir, tracking["mlflow_run_id"], attempt)
    earlier = _LIVE.pop(run_dir, None)
    if earlier is not None:
        earlier.stop()
    _LIVE[run_dir] = TaskTracking(runs_root, run_dir, attempt, tracking).start()


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
        live.stop()
    client = _client(store.root, tracking["tracking_uri"])
    records = store.attempts_of(run_dir.name)
    return sync_run_folder(run_dir, client, records=records, wait=False).reported
