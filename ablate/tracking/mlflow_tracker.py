"""MLflow tracking of sweeps: an experiment per sweep, a parent per invocation, a child per run.

Implements the hooks of :class:`ablate.orchestrate.tracker.Tracker`:

* ``on_sweep_start``: experiment ``<sweep name>`` (``<sweep name>@tiny`` at ``--scale tiny``),
  created once and tagged for the UI's first view (:mod:`ablate.tracking.experiment_view`: the
  training view, the sweep's description and file, a saved runs table); a parent run for this
  ``ablate sweep`` invocation tagged with the git state, host and sweep size.
* ``on_attempt_start``: the run id's child run (tag ``mlflow.parentRunId``, named by its row
  label), created before dispatch with the flattened spec as params, or found again for a retried
  or requeued run id
  (``<run dir>/mlflow.json``, else a search by tag ``ablate.run_id``) and set back to RUNNING, so
  every attempt continues the same MLflow run. Returns the environment naming that run (a SLURM
  task reads it to report its attempt itself).
* while attempts run, a :class:`~ablate.tracking.run_sync.LiveSync` thread brings each child run
  up to date from its run folder's ``metrics.jsonl`` (workers never import MLflow).
* ``on_attempt_end``: one last :func:`~ablate.tracking.run_sync.sync_run_folder`: the remaining
  step metrics, then tags (attempt, status, failure, host, GPU, versions), the final metrics and
  the artifacts (:mod:`ablate.tracking.attempt_report`), and the child run ends FINISHED, FAILED
  or KILLED.
* ``on_sweep_end``: the parent run gets the sweep's summary (``summarize``, the CLI hands in
  :mod:`ablate.report.sweep_summary`: the report table, a link to each child, counts, the best
  run) and ends.

Every write goes through :class:`~ablate.tracking.client.TrackingClient`: a tracking server that is
down never fails a sweep. Step metrics stay in ``metrics.jsonl`` until a later sync sends them;
other writes are spooled; ``ablate sync`` sends both.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ablate.model.spec import is_tiny_spec
from ablate.store.layout import RunsLayout
from ablate.store.provenance import git_state, host_name, package_versions
from ablate.store.run_folder import read_tracking_link, write_tracking_link
from ablate.tracking.attempt_report import git_tags
from ablate.tracking.client import PARENT_REF_TAG, TrackingClient
from ablate.tracking.config import (
    EXPERIMENT_ID_ENV,
    RUN_ID_ENV,
    SPOOL_DIR_NAME,
    TRACKING_URI_ENV,
    flatten_params,
    local_artifact_root,
    redact,
    redact_value,
    resolve_tracking_uri,
)
from ablate.tracking.experiment_view import experiment_name, experiment_tags, run_label
from ablate.tracking.run_sync import LIVE_EVERY_S, LiveSync, note_attempt_started, sync_run_folder
from ablate.tracking.spool import is_local_ref

if TYPE_CHECKING:
    from ablate.spec.sweep import PlannedRun, Sweep
    from ablate.store.record import AttemptRecord

RUN_ID_TAG = "ablate.run_id"

SummarizeSweep = Callable[..., Any]
"""``summarize(client, parent_run_id, sweep, *, runs_root, experiment_id)``."""


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
        live_every_s: how often running attempts' new step metrics are sent.
        summarize: logs the sweep's summary to the parent run at the end
            (:func:`ablate.report.sweep_summary.summarize_sweep`, handed in by the CLI: the report
            sits above tracking); None logs none.
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
        live_every_s: float = LIVE_EVERY_S,
        summarize: SummarizeSweep | None = None,
    ) -> None:
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
        self._ended: dict[str, int] = {"success": 0, "failed": 0, "cancelled": 0}
        self._lock = threading.RLock()  # the live sync thread and the hooks share the client
        self.live = LiveSync(self.client, self._lock, live_every_s)
        self.summarize = summarize

    # ----------------------------------------------------------------------------- sweep
    def on_sweep_start(self, sweep: Sweep, plan: Any) -> None:
        """Experiment for the sweep (once) and a parent run for this invocation."""
        with self._lock:
            self._sweep_start(sweep, plan)

    def _sweep_start(self, sweep: Sweep, plan: Any) -> None:
        self.sweep_name = sweep.name
        name = self.experiment or experiment_name(sweep.name, sweep.scale)
        root = local_artifact_root(self.tracking_uri)
        location = str(Path(root) / name) if root else None
        self.experiment_id = self.client.experiment_id(name, location)
        self.client.set_experiment_tags(self.experiment_id, experiment_tags(sweep))
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
            **git_tags(git.sha, git.dirty),
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
        self.live.close()
        with self._lock:
            self._sweep_end(sweep, interrupted)

    def _sweep_end(self, sweep: Sweep, interrupted: bool) -> None:
        if self.parent_run_id is None:
            return
        tags = {f"ablate.attempts_{k}": str(v) for k, v in self._ended.items()}
        tags["ablate.interrupted"] = str(interrupted).lower()
        self.client.log_batch(self.parent_run_id, tags=tags)
        self._summarize(sweep)
        self.client.set_terminated(self.parent_run_id, "KILLED" if interrupted else "FINISHED")
        if self.client.spool.n_ops:
            print(
                f"[ablate] tracking server {self.client.public_uri} was unreachable: "
                f"{self.client.spool.n_ops} tracking writes kept in {self.spool_dir}; "
                "run `ablate sync` to send them",
                file=sys.stderr,
                flush=True,
            )

    def _summarize(self, sweep: Sweep) -> None:
        """The sweep's summary on the parent run; a failure here never fails the sweep.

        A study (``search:``) is left out: its trials are not the sweep's planned runs, and
        ``ablate tune --summary`` summarises it.
        """
        if sweep.search or self.summarize is None:
            return
        try:
            self.summarize(
                self.client,
                self.parent_run_id or "",
                sweep,
                runs_root=self.layout.root,
                experiment_id=self.experiment_id or "",
            )
        except Exception as exc:  # noqa: BLE001 - the sweep's results are in the store regardless
            warnings.warn(
                f"tracking: the sweep summary of the parent run was not logged "
                f"({type(exc).__name__}: {str(exc)[:300]}); `ablate report` shows it",
                stacklevel=2,
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
        write_tracking_link(run_dir, self.client.public_uri, self.experiment_id, child)
        note_attempt_started(run_dir, child, attempt)
        self.live.add(run_id, run_dir)
        return {
            TRACKING_URI_ENV: self.tracking_uri,
            RUN_ID_ENV: child,
            EXPERIMENT_ID_ENV: self.experiment_id,
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
            **git_tags(git.sha, git.dirty),
            **{f"ablate.version.{k}": v for k, v in package_versions().items()},
        }
        if is_local_ref(self.parent_run_id or ""):
            tags[PARENT_REF_TAG] = tags.pop("mlflow.parentRunId")
        child = self.client.create_run(
            self.experiment_id or "",
            run_name=run_label(run),
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
        link = read_tracking_link(run_dir)
        if link and link.get("tracking_uri") == self.client.public_uri:
            child = str(link.get("run_id") or "")
            if is_local_ref(child) or self.client.run_status(child) is not None:
                return child
        if self.experiment_id is None or attempt <= 1:
            return None
        return self.client.find_run(self.experiment_id, RUN_ID_TAG, run_id)

    def on_attempt_end(self, run: PlannedRun, record: AttemptRecord) -> None:
        """Final tags, metrics and artifacts of the attempt; end the child run."""
        with self._lock:
            self._attempt_end(run, record)

    def _attempt_end(self, run: PlannedRun, record: AttemptRecord) -> None:
        run_id = run.spec.run_id
        run_dir = self.live.remove(run_id)
        if self.children.pop(run_id, None) is None:
            return
        status = record.status.value
        self._ended[status] = self._ended.get(status, 0) + 1
        if record.run_dir:
            run_dir = Path(record.run_dir)
        elif run_dir is None:
            run_dir = self.layout.run_dir(record.sweep, run_id)
        sync_run_folder(run_dir, self.client, records=[record], log_adapter=self.log_adapter)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
