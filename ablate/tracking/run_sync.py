"""The one route of a run's metrics into MLflow: bring its MLflow run up to date from its folder.

Workers write only durable files: step metrics to ``metrics.jsonl`` and each attempt's record to
the results store. :func:`sync_run_folder` reads them and sends MLflow what it does not have yet:

* the step metrics after the folder's cursor, in chunks, advancing the cursor after each chunk
  that reached the server (a chunk that did not is sent by the next sync, never twice);
* each ended attempt started under tracking and not reported yet: tags, final metrics, artifacts
  and the end status (:mod:`ablate.tracking.attempt_report`), once. The last chunk of step metrics
  goes out in the first ended attempt's own ``log_batch``, so an attempt whose steps the live sync
  kept up with costs one ``log_batch`` at its end.

The cursor (``.mlflow-sync.json`` in the run folder) is written atomically while holding the
folder's sync lock, so any number of processes may call the sync at any time: the orchestrator
while a run goes (:class:`LiveSync`) and when it ends, a SLURM task, ``ablate status``, and
``ablate sync`` after an outage or a crash. A cursor written for another MLflow run (the link in
``mlflow.json`` changed) starts over for the new one.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ablate.store.files import hold_lock, write_atomic
from ablate.store.run_folder import (
    METRICS_FILE,
    TRACKING_CURSOR_FILE,
    TRACKING_LOCK_FILE,
    metrics_size,
    read_metric_lines_from,
    read_tracking_link,
)
from ablate.tracking.attempt_report import (
    EndBatch,
    attempt_end_batch,
    end_batch_room,
    report_attempt_end,
)
from ablate.tracking.batching import MAX_METRICS, MetricRow

if TYPE_CHECKING:
    from ablate.store.record import AttemptRecord
    from ablate.tracking.client import TrackingClient

LIVE_EVERY_S = 10.0


@dataclass
class SyncCursor:
    """What of one run folder its MLflow run already has.

    Attributes:
        run_id: the MLflow run the cursor is about (the folder's ``mlflow.json`` link).
        offset: bytes of ``metrics.jsonl`` already sent.
        attempts: attempt number -> where its lines begin in ``metrics.jsonl``, for every attempt
            started under tracking (only those are reported when they end).
        reported: attempts whose end was reported.
        params: the settings ended attempts logged as params (never sent twice: MLflow refuses
            a changed param value).
    """

    run_id: str
    offset: int = 0
    attempts: dict[int, int] = field(default_factory=dict)
    reported: set[int] = field(default_factory=set)
    params: dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, run_dir: Path, run_id: str) -> SyncCursor:
        """The folder's cursor for ``run_id`` (a fresh one if absent, unreadable or for another)."""
        try:
            data = json.loads((Path(run_dir) / TRACKING_CURSOR_FILE).read_text(encoding="utf-8"))
            if data.get("run_id") != run_id:
                return cls(run_id)
            return cls(
                run_id,
                int(data.get("offset", 0)),
                {int(k): int(v) for k, v in (data.get("attempts") or {}).items()},
                {int(a) for a in data.get("reported") or ()},
                {str(k): str(v) for k, v in (data.get("params") or {}).items()},
            )
        except (OSError, ValueError, TypeError, AttributeError):
            return cls(run_id)

    def write(self, run_dir: Path) -> None:
        """Persist the cursor atomically (the caller holds the folder's sync lock)."""
        data = {
            "run_id": self.run_id,
            "offset": self.offset,
            "attempts": {str(k): v for k, v in sorted(self.attempts.items())},
            "reported": sorted(self.reported),
            "params": dict(sorted(self.params.items())),
            "synced_at": time.time(),
        }
        write_atomic(Path(run_dir) / TRACKING_CURSOR_FILE, json.dumps(data, sort_keys=True))

    def attempt_end(self, attempt: int) -> int | None:
        """Where the lines of ``attempt`` end: where the next tracked attempt began (or EOF)."""
        start = self.attempts.get(attempt, 0)
        later = [v for k, v in self.attempts.items() if k > attempt and v >= start]
        return min(later) if later else None


@dataclass
class SyncResult:
    """What one :func:`sync_run_folder` call did.

    Attributes:
        metrics: step metric values sent now.
        reported: attempts whose end was reported now.
        pending: step metrics are left that could not be sent (server down, or the MLflow run is
            still to be created by ``ablate sync``'s spool replay).
        busy: another process held the folder's sync lock (it is syncing the folder).
    """

    metrics: int = 0
    reported: list[int] = field(default_factory=list)
    pending: bool = False
    busy: bool = False


def note_attempt_started(run_dir: Path, run_id: str, attempt: int) -> None:
    """Remember that ``attempt`` starts now under MLflow run ``run_id`` (reported when it ends).

    Its step metrics are the lines appended to ``metrics.jsonl`` from here on; lines of attempts
    before the first one tracked in ``run_id`` are never sent to it.
    """
    run_dir = Path(run_dir)
    with hold_lock(run_dir / TRACKING_LOCK_FILE):
        cursor = SyncCursor.read(run_dir, run_id)
        size = metrics_size(run_dir)
        if not cursor.attempts:  # a new MLflow run: earlier attempts' lines are not its own
            cursor.offset = max(cursor.offset, size)
        cursor.attempts.setdefault(attempt, size)
        cursor.write(run_dir)


def synced_attempts(run_dir: Path) -> set[int]:
    """The attempts of a run folder whose end MLflow already has."""
    link = read_tracking_link(run_dir) or {}
    return SyncCursor.read(Path(run_dir), str(link.get("run_id") or "")).reported


def sync_run_folder(
    run_dir: Path,
    client: TrackingClient,
    *,
    records: Iterable[AttemptRecord] = (),
    log_adapter: bool = False,
    wait: bool = True,
) -> SyncResult:
    """Send MLflow what it lacks of one run folder (idempotent; nothing is sent twice).

    Args:
        run_dir: the run folder; one without ``mlflow.json`` is not tracked (nothing to do).
        client: a tracking client for the folder's tracking URI.
        records: attempt records of the run; ended attempts not reported yet are reported.
        log_adapter: also upload the adapter weights of an ended attempt.
        wait: wait for another process's sync of this folder to finish (``False``: skip, as the
            live sync does).
    """
    run_dir = Path(run_dir)
    link = read_tracking_link(run_dir)
    if not link or not link.get("run_id"):
        return SyncResult()
    child = str(link["run_id"])
    with hold_lock(run_dir / TRACKING_LOCK_FILE, wait=wait) as held:
        if not held:
            return SyncResult(busy=True)
        cursor = SyncCursor.read(run_dir, child)
        result = SyncResult()
        ended = [
            r
            for r in sorted(records, key=lambda r: r.attempt)
            if r.attempt in cursor.attempts and r.attempt not in cursor.reported
        ]
        first = _end_batch(run_dir, cursor, ended[0]) if ended else None
        room = end_batch_room(first) if first else 0  # the last step rows join the first end
        held, held_end = _send_step_metrics(run_dir, client, cursor, result, hold_last=room)
        for record in ended:
            batch = first if record is ended[0] and first else _end_batch(run_dir, cursor, record)
            sent = report_attempt_end(
                client, child, run_dir, record, batch=batch, log_adapter=log_adapter, step_rows=held
            )
            cursor.params.update(batch.params)
            if held:
                if sent:
                    result.metrics += len(held)
                    cursor.offset = held_end
                else:  # left for the next sync
                    result.pending = True
                held = []
            cursor.reported.add(record.attempt)
            cursor.write(run_dir)
            result.reported.append(record.attempt)
        return result


def _send_step_metrics(
    run_dir: Path,
    client: TrackingClient,
    cursor: SyncCursor,
    result: SyncResult,
    *,
    hold_last: int = 0,
) -> tuple[list[MetricRow], int]:
    """Send the complete lines after the cursor, a chunk of whole lines at a time.

    With ``hold_last`` (room beside an attempt's end batch), chunks are at most that large and
    the last one is not sent but returned with the offset it ends at, for the caller to send in
    its own ``log_batch``; the cursor stays before it.
    """
    lines = read_metric_lines_from(run_dir / METRICS_FILE, cursor.offset)
    limit = min(MAX_METRICS, hold_last) if hold_last > 0 else MAX_METRICS
    chunk: list[MetricRow] = []
    chunk_end = cursor.offset
    for index, ((step, stamp_ms, values), end) in enumerate(lines):
        chunk += [(k, v, stamp_ms, step) for k, v in values.items()]
        chunk_end = end
        last = index == len(lines) - 1
        if not last and len(chunk) + len(lines[index + 1][0][2]) <= limit:
            continue
        if last and hold_last > 0 and 0 < len(chunk) <= hold_last:
            return chunk, chunk_end
        if chunk and not client.log_batch(cursor.run_id, metrics=chunk, spool=False):
            result.pending = True
            return [], cursor.offset
        result.metrics += len(chunk)
        cursor.offset = chunk_end
        cursor.write(run_dir)
        chunk = []
    return [], cursor.offset


def _end_batch(run_dir: Path, cursor: SyncCursor, record: AttemptRecord) -> EndBatch:
    """The end batch of an attempt: its final values less those it logged per step."""
    keys: set[str] = set()
    start = cursor.attempts.get(record.attempt, 0)
    for (_, _, values), _end in read_metric_lines_from(
        run_dir / METRICS_FILE, start, cursor.attempt_end(record.attempt)
    ):
        keys.update(values)
    return attempt_end_batch(record, step_keys=keys, logged_params=cursor.params)


class LiveSync:
    """Syncs the run folders of running attempts every ``every_s`` seconds, in a daemon thread.

    Args:
        client: the tracking client (shared with the caller's own writes under ``lock``).
        lock: serialises the thread's client calls with the caller's.
        every_s: seconds between looks.
    """

    def __init__(
        self, client: TrackingClient, lock: Any = None, every_s: float = LIVE_EVERY_S
    ) -> None:
        self.client = client
        self.lock = lock if lock is not None else threading.RLock()
        self.every_s = every_s
        self.run_dirs: dict[str, Path] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, key: str, run_dir: Path) -> None:
        """Start syncing ``run_dir`` (under ``key``, usually the run id)."""
        with self.lock:
            self.run_dirs[key] = Path(run_dir)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="ablate-sync", daemon=True)
            self._thread.start()

    def remove(self, key: str) -> Path | None:
        """Stop syncing ``key``; its run folder."""
        with self.lock:
            return self.run_dirs.pop(key, None)

    def poll(self) -> None:
        """One sync of every folder (the thread's loop body; callable from tests)."""
        with self.lock:
            for run_dir in list(self.run_dirs.values()):
                sync_run_folder(run_dir, self.client, wait=False)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.poll()

    def close(self) -> None:
        """Stop the thread, then sync every folder one last time (``add`` starts a new thread)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.every_s + 5)
        self._thread = None
        self._stop = threading.Event()
        self.poll()
