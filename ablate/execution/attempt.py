"""Run one attempt of one run in this process and record how it ended.

Shared by the worker process (``local`` executor and SLURM tasks) and the ``inline`` executor, so
that both write the same record for the same outcome. Everything the job needs comes from the run
folder: ``spec.json`` (what to run) and ``run.json`` (which sweep dispatched it and its axis
values, only used to label the record).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ablate.execution.slots import discover_gpus
from ablate.store.provenance import device_name, git_state, host_name, package_versions
from ablate.store.record import AttemptRecord, AttemptStatus, FailureKind
from ablate.store.results_store import ResultsStore

SPEC_FILE = "spec.json"
RUN_META_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"
LOG_FILE = "worker.log"
PROGRESS_FILE = "progress.json"
STOP_REASON_FILE = ".stop-reason"  # written by the orchestrator before it stops a job
REASON_MAX_CHARS = 4000


def write_atomic(path: Path, text: str) -> None:
    """Write a small text file so readers see the old or the new content, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_run_files(run_dir: Path, spec_json: str, *, sweep: str, axes: dict[str, Any]) -> None:
    """Write ``spec.json`` (what to run) and ``run.json`` (sweep and axes) into a run folder."""
    write_atomic(run_dir / SPEC_FILE, spec_json + ("" if spec_json.endswith("\n") else "\n"))
    meta = {"sweep": sweep, "axes": axes}
    write_atomic(run_dir / RUN_META_FILE, json.dumps(meta, indent=2, sort_keys=True, default=str))


def read_run_meta(run_dir: Path) -> dict[str, Any]:
    """The sweep and axes of a run folder (defaults: folder's parent name, no axes)."""
    meta: dict[str, Any] = {"sweep": Path(run_dir).resolve().parent.name, "axes": {}}
    with contextlib.suppress(OSError, ValueError):
        meta.update(json.loads((Path(run_dir) / RUN_META_FILE).read_text(encoding="utf-8")))
    return meta


def run_from_dir(run_dir: Path) -> SimpleNamespace:
    """The run a folder holds (``spec``, ``axes``): for recording an attempt without a plan."""
    from ablate.spec.run_spec import load_run_spec

    meta = read_run_meta(run_dir)
    return SimpleNamespace(
        spec=load_run_spec(Path(run_dir) / SPEC_FILE), axes=dict(meta.get("axes") or {})
    )


def resolve_device() -> str:
    """``cuda`` or ``cpu`` for a job here, without importing torch.

    The local executor sets ``ABLATE_DEVICE`` per slot; elsewhere (inline, a SLURM step) a visible
    GPU means ``cuda``.
    """
    chosen = os.environ.get("ABLATE_DEVICE")
    if chosen:
        return chosen
    return "cuda" if discover_gpus() else "cpu"


def classify_failure(exc: BaseException) -> FailureKind:
    """OOM (CUDA or host) versus any other error, by type name so torch need not be imported."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return FailureKind.OOM
    if "out of memory" in str(exc).lower() and "cuda" in str(exc).lower():
        return FailureKind.OOM
    return FailureKind.ERROR


def failure_text(exc: BaseException) -> str:
    """One line naming the error, then the end of its traceback."""
    head = f"{type(exc).__name__}: {exc}"
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    text = f"{head}\n{tb}"
    return text if len(text) <= REASON_MAX_CHARS else head + "\n...\n" + tb[-REASON_MAX_CHARS:]


class MetricsLog:
    """Appends the job's per-step metrics to ``metrics.jsonl`` (and forwards them to a tracker)."""

    def __init__(
        self, path: Path, forward: Callable[[int, dict[str, float]], None] | None = None
    ) -> None:
        self._path = path
        self._file: Any = None
        self._forward = forward

    def __call__(self, step: int, metrics: dict[str, float]) -> None:
        """Forward one call (see the class docstring)."""
        if self._file is None:
            # line-buffered: the tuner (pruning) and the tracking tailer read it while it grows
            self._file = self._path.open("a", encoding="utf-8", buffering=1)
        self._file.write(json.dumps({"step": step, "time": time.time(), **metrics}) + "\n")
        if self._forward is not None:
            self._forward(step, metrics)

    def close(self) -> None:
        """Close the file, if it was opened."""
        if self._file is not None:
            self._file.close()
            self._file = None


MetricLine = tuple[int, int, dict[str, float]]  # (step, timestamp_ms, finite numeric metrics)


def parse_metric_lines(text: str) -> list[MetricLine]:
    """The lines :class:`MetricsLog` wrote; lines cut by a crash and non-numbers are skipped."""
    out = []
    for line in text.splitlines():
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(obj, dict):
            continue
        step = int(obj.pop("step", 0))
        stamp = int(float(obj.pop("time", 0.0)) * 1000)
        values = {
            k: float(v)
            for k, v in obj.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(float(v))
        }
        out.append((step, stamp, values))
    return out


def read_new_metric_lines(path: Path, offset: int) -> tuple[list[MetricLine], int]:
    """Complete lines of a growing ``metrics.jsonl`` after byte ``offset``, and the new offset.

    A line still being written is left for the next read (readers: the tracking tailer, the
    tuner's pruning, the tracker's end-of-attempt catch-up).
    """
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except OSError:
        return [], offset
    end = data.rfind(b"\n") + 1
    return parse_metric_lines(data[:end].decode("utf-8", errors="replace")), offset + end


def run_attempt(
    run_dir: Path,
    attempt: int,
    *,
    store: ResultsStore,
    executor: str,
    stop_flag: Callable[[], bool] = lambda: False,
    device: str | None = None,
    metric_sink: Callable[[int, dict[str, float]], None] | None = None,
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
        metric_sink: forwards per-step metrics (tracker); they are always logged to
            ``metrics.jsonl`` too.
    """
    from ablate.errors import AblateError
    from ablate.jobs.context import JobCancelled, JobContext
    from ablate.jobs.registry import get_job, import_job_modules
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
    # opt-in worker-side streaming to MLflow (ABLATE tracking env set by the tracker); default off
    from ablate.tracking.worker_sink import sink_from_env

    tracking = sink_from_env(run_dir, attempt) if metric_sink is None else None
    sink = MetricsLog(run_dir / METRICS_FILE, metric_sink or tracking)
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
        outcome = {"status": AttemptStatus.SUCCESS, "metrics": _as_metrics(raw)}
        outcome["metrics"].update(_batch_metrics(ctx))
    except JobCancelled as exc:
        outcome = _cancelled(run_dir, f"stopped on request: {exc}")
    except KeyboardInterrupt:
        outcome = _cancelled(run_dir, "interrupted (KeyboardInterrupt)")
    except Exception as exc:  # noqa: BLE001 - every job error becomes a failed record
        if stop_flag():
            reason = f"stopped on request, job raised {type(exc).__name__}: {exc}"
            outcome = _cancelled(run_dir, reason)
        else:
            kind = classify_failure(exc)
            outcome = {
                "status": AttemptStatus.FAILED,
                "failure_kind": kind,
                "failure_reason": _oom_advice(ctx, exc) + failure_text(exc)
                if kind is FailureKind.OOM
                else failure_text(exc),
                "metrics": _batch_metrics(ctx),
            }
    finally:
        sink.close()
        if tracking is not None and hasattr(tracking, "close"):
            tracking.close()
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


def _batch_metrics(ctx: Any) -> dict[str, float]:
    """The micro-batch plan the job ran with, when it asked for one."""
    if ctx.batch_plan is None:
        return {}
    micro, accumulation, divisor = ctx.batch_plan
    return {
        "train/micro_batch": float(micro),
        "train/accumulation_steps": float(accumulation),
        "train/micro_batch_divisor": float(divisor),
    }


def _oom_advice(ctx: Any, exc: BaseException) -> str:
    """First line of an OOM reason: what the next attempt will do about it."""
    from ablate.jobs.context import BatchCannotShrink

    if isinstance(exc, BatchCannotShrink):
        return ""
    if ctx.batch_plan is None:
        return "out of memory (the job does not split its batch; a retry runs the same)\n"
    micro, accumulation, _ = ctx.batch_plan
    if micro % 2:
        return f"out of memory at micro-batch {micro}: cannot shrink further\n"
    return (
        f"out of memory at micro-batch {micro} x {accumulation}; a retry runs micro-batch "
        f"{micro // 2} x {accumulation * 2} (same effective batch)\n"
    )


def _cancelled(run_dir: Path, reason: str) -> dict[str, Any]:
    """A stop on request; a stop for running past the timeout is a failure (it uses budget)."""
    try:
        why = (run_dir / STOP_REASON_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        why = ""
    if why == "timeout":
        return {
            "status": AttemptStatus.FAILED,
            "failure_kind": FailureKind.TIMEOUT,
            "failure_reason": f"ran past the runner's timeout; {reason}",
        }
    return {
        "status": AttemptStatus.CANCELLED,
        "failure_kind": FailureKind.CANCELLED,
        "failure_reason": reason,
    }


def _as_metrics(raw: Any) -> dict[str, float]:
    if not isinstance(raw, dict):
        raise TypeError(f"a job must return dict[str, float], got {type(raw).__name__}")
    metrics = {}
    for key, value in raw.items():
        try:
            metrics[str(key)] = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"metric {key!r} is not a number: {value!r}") from None
    return metrics
