"""Run one attempt of one run in this process and record how it ended.

Shared by the worker process (``local`` executor and SLURM tasks) and the ``inline`` executor, so
both write the same record for the same outcome. Everything the job needs comes from the run
folder (:mod:`ablate.store.run_folder`): ``spec.json`` (what to run) and ``run.json`` (which sweep
dispatched it and its axis values, only used to label the record). Step metrics go to the run
folder's ``metrics.jsonl`` only; the tracker brings MLflow up to date from there.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ablate.execution.failures import (
    as_metrics,
    batch_metrics,
    cancelled_outcome,
    disk_full_advice,
    failed_outcome,
)
from ablate.execution.slots import resolve_device
from ablate.store.provenance import device_name, git_state, host_name, package_versions
from ablate.store.record import AttemptRecord, AttemptStatus, FailureKind
from ablate.store.results_store import ResultsStore
from ablate.store.run_folder import METRICS_FILE, SPEC_FILE, MetricsLog, read_run_meta


def run_attempt(
    run_dir: Path,
    attempt: int,
    *,
    store: ResultsStore,
    executor: str,
    stop_flag: Callable[[], bool] = lambda: False,
    device: str | None = None,
) -> AttemptRecord:
    """Run the job described by ``run_dir/spec.json`` and write the attempt's record.

    Never raises for a job's failure: every outcome becomes a record (success, failed with its
    kind and reason, or cancelled). ``KeyboardInterrupt`` inside the job counts as cancelled.

    Args:
        run_dir: the run folder.
        attempt: the attempt number.
        store: where the record goes.
        executor: name recorded beside the result (``local``, ``inline``).
        stop_flag: returns True once the attempt was asked to stop.
        device: ``cuda``/``cpu``; resolved from the environment when ``None``.
    """
    from ablate.errors import AblateError, JobCancelled
    from ablate.jobs.context import JobContext
    from ablate.spec.job_kinds import get_job, import_job_modules
    from ablate.spec.run_spec import load_run_spec

    run_dir = Path(run_dir)
    started = time.time()
    meta = read_run_meta(run_dir)
    device = device or resolve_device()
    git = git_state()
    fields: dict[str, Any] = {
        "run_id": run_dir.name,
        "sweep": str(meta["sweep"]),
        "attempt": attempt,
        "axes": dict(meta.get("axes") or {}),
        "job": "?",
        "started_at": started,
        "git_sha": git.sha,
        "git_dirty": git.dirty,
        "versions": package_versions(),
        "host": host_name(),
        "executor": executor,
        "run_dir": str(run_dir),
    }
    try:
        import_job_modules()
        spec = load_run_spec(run_dir / SPEC_FILE)
        runner = get_job(spec.job).load_runner()
    except (AblateError, KeyError, ImportError, AttributeError) as exc:
        record = AttemptRecord(
            status=AttemptStatus.FAILED,
            failure_kind=FailureKind.SPEC,
            failure_reason=f"cannot load the run: {exc}",
            ended_at=time.time(),
            device=device_name(device),
            **fields,
        )
        store.write(record)
        return record
    fields.update(run_id=spec.run_id, job=spec.job, seed=spec.seed, spec=spec.to_dict())
    sink = MetricsLog(run_dir / METRICS_FILE)
    ctx = JobContext(
        run_dir=run_dir,
        attempt=attempt,
        device=device,
        metric_sink=sink,
        stop_flag=stop_flag,
        micro_batch_divisor=micro_batch_divisor(store, spec.run_id, attempt),
    )
    outcome: dict[str, Any]
    try:
        raw = runner(spec, ctx)
        outcome = {"status": AttemptStatus.SUCCESS, "metrics": as_metrics(raw)}
        outcome["metrics"].update(batch_metrics(ctx.batch_plan))
    except JobCancelled as exc:
        outcome = cancelled_outcome(run_dir, f"stopped on request: {exc}")
    except KeyboardInterrupt:
        outcome = cancelled_outcome(run_dir, "interrupted (KeyboardInterrupt)")
    except Exception as exc:  # noqa: BLE001 - every job error becomes a failed record
        if stop_flag() and not disk_full_advice(exc):  # a full disk fails even a stopping job
            reason = f"stopped on request, job raised {type(exc).__name__}: {exc}"
            outcome = cancelled_outcome(run_dir, reason)
        else:
            outcome = failed_outcome(exc, ctx.batch_plan)
    finally:
        sink.close()
    if outcome.get("failure_reason"):
        from ablate.tracking.config import redact_value

        # tracebacks quote messages (an HTTP error with a token in its URL, a printed env)
        outcome["failure_reason"] = redact_value(outcome["failure_reason"])
    record = AttemptRecord(ended_at=time.time(), device=device_name(device), **fields, **outcome)
    try:
        store.write(record)
    except OSError as err:
        # the result could not be stored (disk full, quota): record the attempt failed in a
        # smaller record so the run is retried (from its checkpoint) rather than lost; if even
        # that cannot be written, the error propagates and the caller records the attempt
        record = AttemptRecord(
            ended_at=time.time(),
            device=device_name(device),
            **fields,
            status=AttemptStatus.FAILED,
            failure_kind=FailureKind.ERROR,
            failure_reason=f"the attempt ended {record.status.value} but its record could not "
            f"be written ({err}); the run will be retried",
        )
        store.write(record)
    return record


def micro_batch_divisor(store: ResultsStore, run_id: str, attempt: int) -> int:
    """``2 ** n`` for the ``n`` earlier attempts of this run that ran out of memory.

    Each OOM halves the next attempt's micro-batch (jobs double the accumulation through
    :meth:`JobContext.micro_batch`), so the effective batch and the run id stay the same.
    """
    earlier = [r for r in store.attempts_of(run_id) if r.attempt < attempt]
    return 2 ** sum(1 for r in earlier if r.failure_kind is FailureKind.OOM)
