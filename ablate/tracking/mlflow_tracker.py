"""MLflow tracking of sweeps: an experiment per sweep, a parent per invocation, a child per run.

Implements the hooks of :class:`ablate.orchestrate.tracker.Tracker`:

* ``on_sweep_start``: experiment ``<sweep name>`` (``<sweep name>@tiny`` at ``--scale tiny``),
  created once; a parent run for this ``ablate sweep`` invocation tagged with the git state,
  host and sweep size.
* ``on_attempt_start``: the run id's child run (tag ``mlflow.parentRunId``), created before
  dispatch with the flattened spec as params, or found again for a retried or requeued run id
  (``<run dir>/mlflow.json``, else, for a run with recorded attempts, a search by tag
  ``ablate.run_id``) and set back to RUNNING, so every attempt continues the same MLflow run.
  Returns the environment that tells the worker which run to resume
  (:mod:`ablate.tracking.worker_sink`).
* ``on_attempt_end``: tags (attempt, status, failure, host, GPU, versions), the final metrics
  and the step metrics not sent yet (the tailer's last rows, or ``metrics.jsonl`` when nobody
  streamed them) in one ``log_batch``; then the artifacts: the spec, per-question predictions,
  the accuracy table, the worker log and, opt-in, the adapter weights. Then the child run is
  ended FINISHED, FAILED or KILLED.

Every write goes through :class:`~ablate.tracking.client.TrackingClient`: a tracking server that is
down never fails a sweep, its writes are spooled and replayed by ``ablate sync``.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ablate.report.collect import is_tiny_spec
from ablate.store.layout import RunsLayout
from ablate.store.provenance import git_state, host_name, package_versions
from ablate.tracking.client import PARENT_REF_TAG, TrackingClient
from ablate.tracking.config import (
    EXPERIMENT_ID_ENV,
    RUN_ID_ENV,
    RUN_LINK_FILE,
    SPOOL_DIR_ENV,
    SPOOL_DIR_NAME,
    STREAM_ENV,
    STREAM_MODES,
    TRACKING_URI_ENV,
    flatten_params,
    local_artifact_root,
    redact,
    redact_tree,
    redact_value,
    resolve_tracking_uri,
)
from ablate.tracking.spool import is_local_ref
from ablate.tracking.tailer import TAIL_EVERY_S, MetricsTailer
from ablate.tracking.worker_sink import STREAM_MARKER, read_metric_lines

if TYPE_CHECKING:
    from ablate.spec.sweep import PlannedRun, Sweep
    from ablate.store.record import AttemptRecord

RUN_ID_TAG = "ablate.run_id"
STATUS_OF = {"success": "FINISHED", "failed": "FAILED", "cancelled": "KILLED"}
ARTIFACT_PATTERNS = ("predictions_*.jsonl",)
TEXT_ARTIFACTS = ("worker.log",)  # uploaded as redacted copies (a job may print anything)
ADAPTER_FILES = ("adapter.safetensors",)
ACCURACY_COLUMNS = ("NAT", "SOC", "LAN", "TXT", "IMG", "NO", "G1-6", "G7-12", "Avg")


class MlflowTracker:
    """MLflow tracking for one ``ablate sweep`` invocation.

    Args:
        runs_root: the runs root (run folders, and the spool in ``.tracking-spool/``).
        tracking_uri: ``--tracking-uri``; default ``$MLFLOW_TRACKING_URI`` or
            ``sqlite:///<project>/mlflow.db``.
        project_dir: where the default ``mlflow.db`` lives (default: the current directory).
        log_adapter: also upload the adapter weights (off by default: they can be large).
        experiment: experiment name (default: the sweep's name).
        retry_after_s: how long a tracking server is left alone after a failed write.
        stream: who sends the step metrics live: ``orchestrator`` (default: this process tails
            each run's ``metrics.jsonl``; workers never import MLflow) or ``worker`` (the worker
            resumes the child run by id and streams itself, see ``worker_sink``).
        tail_every_s: how often the orchestrator forwards new step metrics.
    """

    def __init__(
        self,
        runs_root: Path | str,
        tracking_uri: str | None = None,
        *,
        project_dir: Path | str | None = None,
        log_adapter: bool = False,
        experiment: str | None = None,
        retry_after_s: float = 30.0,
        stream: str = "orchestrator",
        tail_every_s: float = TAIL_EVERY_S,
    ) -> None:
        if stream not in STREAM_MODES:
            raise ValueError(f"stream must be one of {', '.join(STREAM_MODES)}, got {stream!r}")
        self.layout = RunsLayout(Path(runs_root))
        self.tracking_uri = resolve_tracking_uri(tracking_uri, project_dir)
        self.spool_dir = (self.layout.root / SPOOL_DIR_NAME).resolve()
        self.client = TrackingClient(self.tracking_uri, self.spool_dir, retry_after_s=retry_after_s)
        self.log_adapter = log_adapter
        self.experiment = experiment
        self.experiment_id: str | None = None
        self.parent_run_id: str | None = None
        self.sweep_name: str | None = None
        self.children: dict[str, str] = {}
        self._metrics_offset: dict[str, int] = {}
        self._ended: dict[str, int] = {"success": 0, "failed": 0, "cancelled": 0}
        self.stream = stream
        self._lock = threading.RLock()  # the tailer thread and the hooks share the client
        self.tailer = MetricsTailer(self._send_rows, self._lock, tail_every_s)

    def _send_rows(self, child: str, rows: list[tuple[str, float, int, int]]) -> None:
        self.client.log_batch(child, metrics=rows)

    # ----------------------------------------------------------------------------- sweep
    def on_sweep_start(self, sweep: Sweep, plan: Any) -> None:
        """Experiment for the sweep (once) and a parent run for this invocation."""
        with self._lock:
            self._sweep_start(sweep, plan)

    def _sweep_start(self, sweep: Sweep, plan: Any) -> None:
        self.sweep_name = sweep.name
        # tiny-scale runs get their own experiment: never charted beside real-scale ones
        name = self.experiment or (f"{sweep.name}@{sweep.scale}" if sweep.scale else sweep.name)
        root = local_artifact_root(self.tracking_uri)
        location = str(Path(root) / name) if root else None
        self.experiment_id = self.client.experiment_id(name, location)
        git = git_state()
        tags = {
            "ablate.kind": "sweep",
            "ablate.sweep": sweep.name,
            "ablate.sweep_file": str(sweep.path),
            "ablate.scale": sweep.scale or "full",
            "ablate.n_runs": str(len(sweep.runs)),
            "ablate.axes": ",".join(sweep.axis_keys),
            "ablate.command": redact_value(" ".join(sys.argv))[:1000],
            "ablate.host": host_name(),
            **_git_tags(git.sha, git.dirty),
        }
        entries = getattr(plan, "entries", None)
        if entries is not None:
            tags["ablate.n_dispatch"] = str(sum(1 for e in entries if getattr(e, "dispatch", 0)))
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
        self.parent_run_id = self.client.create_run(
            self.experiment_id, run_name=f"{sweep.name} {stamp}Z", tags=redact(tags)
        )

    def on_sweep_end(self, sweep: Sweep, interrupted: bool) -> None:
        """End the parent run: KILLED when interrupted, else FINISHED."""
        self.tailer.close()
        for run_id in list(self.tailer.states):
            self.tailer.finish(run_id)
        with self._lock:
            self._sweep_end(sweep, interrupted)

    def _sweep_end(self, sweep: Sweep, interrupted: bool) -> None:
        if self.parent_run_id is None:
            return
        tags = {f"ablate.attempts_{k}": str(v) for k, v in self._ended.items()}
        tags["ablate.interrupted"] = str(interrupted).lower()
        self.client.log_batch(self.parent_run_id, tags=tags)
        self.client.set_terminated(self.parent_run_id, "KILLED" if interrupted else "FINISHED")
        if self.client.spool.n_ops:
            print(
                f"[ablate] tracking server {self.tracking_uri} was unreachable: "
                f"{self.client.spool.n_ops} tracking writes kept in {self.spool_dir}; "
                "run `ablate sync` to send them",
                file=sys.stderr,
                flush=True,
            )

    # --------------------------------------------------------------------------- attempts
    def on_attempt_start(self, run: PlannedRun, attempt: int) -> dict[str, str]:
        """Create or resume the run id's child run; the environment that hands it to the worker."""
        with self._lock:
            return self._attempt_start(run, attempt)

    def _attempt_start(self, run: PlannedRun, attempt: int) -> dict[str, str]:
        assert self.experiment_id is not None, "on_sweep_start was not called"
        run_id = run.spec.run_id
        run_dir = self.layout.run_dir(self.sweep_name or "", run_id)
        child = self._existing_child(run_dir, run_id, attempt)
        tags = {"ablate.attempt": str(attempt), "ablate.status": "running"}
        if child is not None:
            self.client.update_run(child, "RUNNING")
            self.client.log_batch(child, tags=tags)
        else:
            child = self._create_child(run, attempt)
        self.children[run_id] = child
        _write_link(run_dir, self.tracking_uri, self.experiment_id, child)
        offset = _file_size(run_dir / "metrics.jsonl")
        self._metrics_offset[run_id] = offset
        if self.stream == "orchestrator":
            self.tailer.add(run_id, child, run_dir / "metrics.jsonl", offset)
        return {
            TRACKING_URI_ENV: self.tracking_uri,
            RUN_ID_ENV: child,
            EXPERIMENT_ID_ENV: self.experiment_id,
            SPOOL_DIR_ENV: str(self.spool_dir),
            STREAM_ENV: self.stream,
        }

    def _create_child(self, run: PlannedRun, attempt: int) -> str:
        git = git_state()
        spec = run.spec.to_dict()
        tags = {
            "mlflow.parentRunId": self.parent_run_id or "",
            RUN_ID_TAG: run.spec.run_id,
            "ablate.sweep": self.sweep_name or "",
            "ablate.label": run.label or "",
            "ablate.job": str(spec.get("job", "")),
            "ablate.seed": str(spec.get("seed", "")),
            "ablate.attempt": str(attempt),
            "ablate.status": "running",
            "ablate.tiny": str(is_tiny_spec(spec)).lower(),
            **{f"ablate.axis.{k}": _text(v) for k, v in run.axes.items()},
            **_git_tags(git.sha, git.dirty),
            **{f"ablate.version.{k}": v for k, v in package_versions().items()},
        }
        if is_local_ref(self.parent_run_id or ""):
            tags[PARENT_REF_TAG] = tags.pop("mlflow.parentRunId")
        child = self.client.create_run(
            self.experiment_id or "",
            run_name=run.label or run.spec.run_id,
            tags=redact({k: v for k, v in tags.items() if v != ""}),
        )
        self.client.log_batch(child, params=flatten_params(spec))
        return child

    def _existing_child(self, run_dir: Path, run_id: str, attempt: int) -> str | None:
        """The child run earlier attempts of ``run_id`` logged to, if any.

        The run folder's link names it. Without a usable link, the experiment is searched by
        tag, but only for a run the store has attempts of (``attempt > 1``): a first attempt has
        no earlier child (the link is written right after the child is created), so a sweep of
        new runs makes no search per run.
        """
        link = _read_link(run_dir)
        if link and link.get("tracking_uri") == self.tracking_uri:
            child = str(link.get("run_id") or "")
            if is_local_ref(child) or self.client.run_status(child) is not None:
                return child
        if self.experiment_id is None or attempt <= 1:
            return None
        return self.client.find_run(self.experiment_id, RUN_ID_TAG, run_id)

    def adopt(self, run_id: str, child: str, metrics_offset: int = 0) -> None:
        """Take over a child run this tracker did not start (an attempt run by a SLURM task).

        ``on_attempt_end`` then ends it like one of its own; step metrics are read from
        ``metrics_offset`` (where the attempt began in ``metrics.jsonl``) unless the worker
        streamed them.
        """
        with self._lock:
            self.children[run_id] = child
            self._metrics_offset[run_id] = metrics_offset

    def on_attempt_end(self, run: PlannedRun, record: AttemptRecord) -> None:
        """Final tags, metrics and artifacts of the attempt; end the child run."""
        with self._lock:
            self._attempt_end(run, record)

    def _attempt_end(self, run: PlannedRun, record: AttemptRecord) -> None:
        run_id = run.spec.run_id
        child = self.children.pop(run_id, None)
        if child is None:
            return
        status = record.status.value
        self._ended[status] = self._ended.get(status, 0) + 1
        run_dir = (
            Path(record.run_dir) if record.run_dir else self.layout.run_dir(record.sweep, run_id)
        )
        tags = {
            "ablate.attempt": str(record.attempt),
            "ablate.status": status,
            "ablate.host": record.host or "",
            "ablate.gpu": record.device or "",
            "ablate.executor": record.executor or "",
            **_git_tags(record.git_sha, record.git_dirty),
            **{f"ablate.version.{k}": v for k, v in record.versions.items()},
        }
        if record.failure_kind is not None:
            tags["ablate.failure_kind"] = record.failure_kind.value
            tags["ablate.failure_reason"] = redact_value((record.failure_reason or "")[:1000])
        metrics = self._attempt_metrics(run_dir, run_id, record)
        self.client.log_batch(child, metrics=metrics, tags=redact(tags))
        self._log_artifacts(child, run_dir, record)
        self.client.set_terminated(child, STATUS_OF[status])

    def _attempt_metrics(
        self, run_dir: Path, run_id: str, record: AttemptRecord
    ) -> list[tuple[str, float, int, int]]:
        """Final metrics, and the step metrics not sent yet (by the tailer or the worker)."""
        offset = self._metrics_offset.pop(run_id, 0)
        rows: list[tuple[str, float, int, int]] = []
        seen: set[str] = set()
        last_step = 0
        tailed, unsent = self.tailer.take(run_id)
        if tailed is not None:  # the tail's last rows go out with the final metrics
            rows, seen, last_step = unsent, tailed.seen, tailed.last_step
        else:
            streamed = _streamed_attempt(run_dir) == record.attempt
            for step, stamp_ms, values in read_metric_lines(run_dir / "metrics.jsonl", offset):
                last_step = max(last_step, step)
                seen.update(values)
                if not streamed:
                    rows += [(k, v, stamp_ms, step) for k, v in values.items()]
        now = int((record.ended_at or time.time()) * 1000)
        rows += [(k, v, now, last_step) for k, v in record.metrics.items() if k not in seen]
        if record.duration_s is not None:
            rows.append(("time/attempt_s", float(record.duration_s), now, last_step))
        return rows

    def _log_artifacts(self, child: str, run_dir: Path, record: AttemptRecord) -> None:
        spec_path = run_dir / "spec.json"
        if spec_path.is_file():
            safe = run_dir / ".mlflow-artifacts" / "spec.json"
            safe.parent.mkdir(exist_ok=True)
            safe.write_text(json.dumps(redact_tree(json.loads(spec_path.read_text())), indent=2))
            self.client.log_artifact(child, safe)
        table = _accuracy_table(record.metrics)
        if table is not None:
            path = run_dir / ".mlflow-artifacts" / "accuracy.md"
            path.parent.mkdir(exist_ok=True)
            path.write_text(table)
            self.client.log_artifact(child, path)
        for name in TEXT_ARTIFACTS:
            if (run_dir / name).is_file():
                safe = run_dir / ".mlflow-artifacts" / name
                safe.parent.mkdir(exist_ok=True)
                text = (run_dir / name).read_text(encoding="utf-8", errors="replace")
                safe.write_text(redact_value(text), encoding="utf-8")
                self.client.log_artifact(child, safe)
        for pattern in ARTIFACT_PATTERNS:
            for path in sorted(run_dir.glob(pattern)):
                self.client.log_artifact(child, path)
        if self.log_adapter:
            for name in ADAPTER_FILES:
                if (run_dir / name).is_file():
                    self.client.log_artifact(child, run_dir / name, artifact_path="adapter")


def _git_tags(sha: str | None, dirty: bool | None) -> dict[str, str]:
    tags = {}
    if sha:
        tags["ablate.git_sha"] = sha
        tags["mlflow.source.git.commit"] = sha
    if dirty is not None:
        tags["ablate.git_dirty"] = str(dirty).lower()
    return tags


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _read_link(run_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((run_dir / RUN_LINK_FILE).read_text())
    except (OSError, ValueError):
        return None


def _write_link(run_dir: Path, uri: str, experiment_id: str, run_id: str) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    payload = {"tracking_uri": uri, "experiment_id": experiment_id, "run_id": run_id}
    tmp = run_dir / f".{RUN_LINK_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(payload, indent=1))
    os.replace(tmp, run_dir / RUN_LINK_FILE)


def _streamed_attempt(run_dir: Path) -> int | None:
    try:
        return int(json.loads((run_dir / STREAM_MARKER).read_text())["attempt"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _accuracy_table(metrics: dict[str, float]) -> str | None:
    """A markdown table of the ScienceQA accuracy columns for each split that has them."""
    splits = [s for s in ("test", "val") if f"{s}/Avg" in metrics]
    if not splits:
        return None
    header = "| split | " + " | ".join(ACCURACY_COLUMNS) + " | unparseable |"
    rule = "|---|" + "---:|" * (len(ACCURACY_COLUMNS) + 1)
    lines = [header, rule]
    for split in splits:
        cells = [
            f"{metrics[f'{split}/{c}']:.2f}" if f"{split}/{c}" in metrics else "—"
            for c in (*ACCURACY_COLUMNS, "unparseable")
        ]
        lines.append(f"| {split} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
