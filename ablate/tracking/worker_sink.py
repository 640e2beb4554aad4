"""The worker's side of tracking: stream per-step metrics into the pre-created child run.

The orchestrator's tracker creates (or finds again) the run id's MLflow child run and passes its
id to the worker in ``$ABLATE_MLFLOW_RUN_ID`` with ``$MLFLOW_TRACKING_URI``. The worker resumes
that run by id (it never creates one), so a retried or requeued attempt continues the same MLflow
run. :func:`sink_from_env` builds the sink the worker hands to the job as ``JobContext``'s
``metric_sink``.

Tracking must cost training nothing: the sink only appends to an in-memory buffer; a daemon
thread imports MLflow (seconds, paid off the training thread) and sends the buffer with one
``log_batch`` every ``flush_every_s`` seconds or every 1000 metrics. A server that is down makes
the thread spool the batch to disk instead (``ablate sync`` replays it). ``close()`` sends the
rest and writes ``.mlflow-stream.json`` in the run folder so the orchestrator knows not to send
the same step metrics again from ``metrics.jsonl``.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from pathlib import Path

from ablate.execution.attempt import MetricLine, parse_metric_lines
from ablate.tracking.batching import MAX_METRICS, MetricRow
from ablate.tracking.client import TrackingClient
from ablate.tracking.config import (
    RUN_ID_ENV,
    SPOOL_DIR_ENV,
    SPOOL_DIR_NAME,
    STREAM_ENV,
    TRACKING_URI_ENV,
)

STREAM_MARKER = ".mlflow-stream.json"
FLUSH_EVERY_S = 5.0
CLOSE_TIMEOUT_S = 120.0


class MlflowMetricSink:
    """A ``metric_sink(step, metrics)`` that batches metrics into an existing MLflow run.

    Args:
        run_id: the MLflow run to log to (created by the orchestrator; may be a local reference
            when the server was down then: everything is spooled).
        tracking_uri: the tracking URI.
        spool_dir: where batches go while the server is down.
        run_dir: the run folder (for the stream marker); ``None`` writes no marker.
        attempt: the attempt number written into the marker.
        flush_every_s: the longest a metric waits in the buffer.
    """

    def __init__(
        self,
        run_id: str,
        tracking_uri: str,
        spool_dir: Path | str,
        *,
        run_dir: Path | None = None,
        attempt: int = 1,
        flush_every_s: float = FLUSH_EVERY_S,
    ) -> None:
        self.run_id = run_id
        self.client = TrackingClient(tracking_uri, spool_dir)
        self.run_dir = run_dir
        self.attempt = attempt
        self.flush_every_s = flush_every_s
        self._buffer: list[MetricRow] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = False
        self._thread: threading.Thread | None = None
        self.sent = 0
        self.spooled = 0

    def __call__(self, step: int, metrics: dict[str, float]) -> None:
        """Buffer one step's metrics (non-finite or non-numeric values are skipped)."""
        stamp = int(time.time() * 1000)
        rows = []
        for key, value in metrics.items():
            try:
                number = float(value)
            except (TypeError, ValueError):
                continue
            if math.isfinite(number):
                rows.append((str(key), number, stamp, int(step)))
        with self._lock:
            self._buffer.extend(rows)
            full = len(self._buffer) >= MAX_METRICS
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="ablate-mlflow", daemon=True)
            self._thread.start()
        if full:
            self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_every_s)
            self._wake.clear()
            self._flush()
            if self._closing:
                return

    def _flush(self) -> None:
        with self._lock:
            rows, self._buffer = self._buffer, []
        if not rows:
            return
        if self.client.log_batch(self.run_id, metrics=rows):
            self.sent += len(rows)
        else:
            self.spooled += len(rows)

    def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Send what is buffered, stop the thread and write the stream marker."""
        self._closing = True
        if self._thread is not None:
            self._wake.set()
            self._thread.join(timeout_s)
        self._flush()
        if self.run_dir is not None:
            marker = {
                "attempt": self.attempt,
                "run_id": self.run_id,
                "sent": self.sent,
                "spooled": self.spooled,
            }
            tmp = self.run_dir / f".{STREAM_MARKER}.{os.getpid()}.tmp"
            tmp.write_text(json.dumps(marker))
            os.replace(tmp, self.run_dir / STREAM_MARKER)


def sink_from_env(run_dir: Path | None = None, attempt: int = 1) -> MlflowMetricSink | None:
    """The sink for the run the orchestrator named in the environment, or ``None``.

    ``None`` when there is no tracking, or when the orchestrator forwards the step metrics itself
    (``$ABLATE_MLFLOW_STREAM=orchestrator``, the default: then the worker never imports MLflow).

    Args:
        run_dir: the run folder (its runs root holds the default spool).
        attempt: this attempt's number.
    """
    run_id = os.environ.get(RUN_ID_ENV)
    uri = os.environ.get(TRACKING_URI_ENV)
    if not run_id or not uri or os.environ.get(STREAM_ENV, "worker") != "worker":
        return None
    spool = os.environ.get(SPOOL_DIR_ENV)
    if not spool:
        root = Path(run_dir).resolve().parent.parent if run_dir is not None else Path("runs")
        spool = str(root / SPOOL_DIR_NAME)
    return MlflowMetricSink(run_id, uri, spool, run_dir=run_dir, attempt=attempt)


def read_metric_lines(path: Path, offset: int = 0) -> list[MetricLine]:
    """``(step, timestamp_ms, metrics)`` from ``metrics.jsonl`` after byte ``offset``, to its end.

    The attempt is over, so a last line without its newline counts too.
    """
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            data = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    return parse_metric_lines(data)
