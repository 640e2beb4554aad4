"""Tracking for attempts no orchestrator waits for (SLURM tasks): reported from the run folder.

A detached executor submits and returns, so the orchestrator's ``on_attempt_end`` never runs for
its attempts. Everything needed to finish the job later is on disk: the child run chosen at
submission (in the task's environment and the run folder's ``slurm.json``) and the attempt
records in the store. :func:`report_attempt_start` sets the child run back to RUNNING when a task
(also a requeued one) starts an attempt; :func:`report_ended_attempts` sends every ended attempt
through the orchestrator's own :class:`~ablate.tracking.mlflow_tracker.MlflowTracker` code (tags,
final metrics, artifacts, end status), once per attempt: ``.mlflow-reported.json`` in the run
folder lists the attempts already sent, and a lock beside it keeps two reporters (the task and
``ablate status``) from sending the same attempt twice.

The SLURM task calls both around its worker; ``ablate status`` and ``ablate sweep --wait`` call
:func:`report_ended_attempts` for runs whose task died before it could. Tracking never fails a
run: a server that is down gets the writes spooled (``ablate sync``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ablate.tracking.config import RUN_ID_ENV, TRACKING_URI_ENV

if TYPE_CHECKING:
    from ablate.store.results_store import ResultsStore

REPORTED_FILE = ".mlflow-reported.json"  # {"reported": [attempts], "offsets": {attempt: bytes}}
TRACKED_EXECUTORS = ("slurm",)  # attempts whose end no orchestrator reported


def tracking_of(env: Mapping[str, str]) -> dict[str, str] | None:
    """``{"tracking_uri", "mlflow_run_id"}`` from a task's environment (``None``: untracked)."""
    uri, child = env.get(TRACKING_URI_ENV), env.get(RUN_ID_ENV)
    if not uri or not child:
        return None
    return {"tracking_uri": uri, "mlflow_run_id": child}


def _read_state(run_dir: Path) -> dict[str, Any]:
    try:
        state = json.loads((run_dir / REPORTED_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"reported": [], "offsets": {}}
    if not isinstance(state, dict):
        return {"reported": [], "offsets": {}}
    state.setdefault("reported", [])
    state.setdefault("offsets", {})
    return state


def reported_attempts(run_dir: Path) -> set[int]:
    """The attempts of a run already sent to MLflow by a detached reporter."""
    return {int(a) for a in _read_state(Path(run_dir))["reported"]}


def _write_state(run_dir: Path, state: dict[str, Any]) -> None:
    tmp = run_dir / f".{REPORTED_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(state, sort_keys=True), encoding="utf-8")
    os.replace(tmp, run_dir / REPORTED_FILE)


@contextlib.contextmanager
def _reporting_lock(run_dir: Path) -> Iterator[bool]:
    """Hold the run folder's reporting lock; yields False when another process holds it."""
    fd = os.open(run_dir / f"{REPORTED_FILE}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def _tracker(runs_root: Path, tracking_uri: str) -> Any:
    from ablate.tracking.mlflow_tracker import MlflowTracker

    return MlflowTracker(runs_root, tracking_uri, stream="worker")


def report_queued(runs_root: Path, trackings: list[Mapping[str, str]]) -> None:
    """Mark submitted runs SCHEDULED in MLflow (tag ``ablate.status: queued``) until they start.

    Without it the runs of a sweep queued for hours look RUNNING in the MLflow UI. One client
    for all of them; :func:`report_attempt_start` sets each RUNNING when its task starts.
    """
    clients: dict[str, Any] = {}
    for tracking in trackings:
        uri = tracking["tracking_uri"]
        if uri not in clients:
            clients[uri] = _tracker(runs_root, uri).client
        clients[uri].update_run(tracking["mlflow_run_id"], "SCHEDULED")
        clients[uri].log_batch(tracking["mlflow_run_id"], tags={"ablate.status": "queued"})


def report_attempt_start(
    run_dir: Path, runs_root: Path, attempt: int, tracking: Mapping[str, str]
) -> None:
    """Set the run's MLflow child back to RUNNING for ``attempt``; remember where it starts.

    Args:
        run_dir: the run folder.
        runs_root: the runs root (its ``.tracking-spool/`` takes writes while the server is down).
        attempt: the attempt starting now.
        tracking: from :func:`tracking_of`.
    """
    run_dir = Path(run_dir)
    try:
        offset = (run_dir / "metrics.jsonl").stat().st_size
    except OSError:
        offset = 0
    with _reporting_lock(run_dir) as held:
        if held:
            state = _read_state(run_dir)
            state["offsets"][str(attempt)] = offset
            _write_state(run_dir, state)
    tracker = _tracker(runs_root, tracking["tracking_uri"])
    child = tracking["mlflow_run_id"]
    tracker.client.update_run(child, "RUNNING")
    tags = {"ablate.attempt": str(attempt), "ablate.status": "running"}
    tracker.client.log_batch(child, tags=tags)


def report_ended_attempts(
    store: ResultsStore, run_dir: Path, tracking: Mapping[str, str]
) -> list[int]:
    """Send every recorded, not yet reported SLURM attempt of one run to its MLflow child run.

    Returns:
        The attempt numbers reported now (empty when another process is reporting this run).
    """
    from ablate.execution.attempt import run_from_dir

    run_dir = Path(run_dir)
    run_id = run_dir.name
    with _reporting_lock(run_dir) as held:
        if not held:
            return []
        state = _read_state(run_dir)
        done = set(state["reported"])
        records = sorted(
            (
                r
                for r in store.attempts_of(run_id)
                if r.attempt not in done and r.executor in TRACKED_EXECUTORS
            ),
            key=lambda r: r.attempt,
        )
        if not records:
            return []
        tracker = _tracker(store.root, tracking["tracking_uri"])
        run = run_from_dir(run_dir)
        reported = []
        for record in records:
            offset = int(state["offsets"].get(str(record.attempt), 0))
            tracker.adopt(run_id, tracking["mlflow_run_id"], metrics_offset=offset)
            tracker.on_attempt_end(run, record)
            state["reported"] = sorted(done | {record.attempt, *reported})
            state["reported_at"] = time.time()
            _write_state(run_dir, state)
            reported.append(record.attempt)
        return reported
