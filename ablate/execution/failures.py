"""How an attempt ended, in words a record keeps: failure kinds, reasons and the OOM advice.

The worker process and the inline executor both end an attempt through
:func:`~ablate.execution.attempt.run_attempt`; this module turns what the job raised (or
returned) into the fields of its :class:`~ablate.store.record.AttemptRecord`, without importing
torch: an OOM is recognised by its type name.
"""

from __future__ import annotations

import errno
import traceback
from pathlib import Path
from typing import Any

from ablate.store.record import AttemptStatus, FailureKind
from ablate.store.run_folder import read_stop_reason

REASON_MAX_CHARS = 4000


def classify_failure(exc: BaseException) -> FailureKind:
    """OOM (CUDA or host), a config error, or any other error (by type name: no torch import).

    Config errors are the spec's fault and retrying cannot help: a user error
    (:class:`~ablate.errors.AblateError`, e.g. ``ConfigError: data.root is not set``) or a file
    the spec names that is not there (data, weights: ``FileNotFoundError``).
    """
    from ablate.errors import AblateError

    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return FailureKind.OOM
    if "out of memory" in str(exc).lower() and "cuda" in str(exc).lower():
        return FailureKind.OOM
    if isinstance(exc, (AblateError, FileNotFoundError)):
        return FailureKind.CONFIG
    return FailureKind.ERROR


def failure_text(exc: BaseException) -> str:
    """One line naming the error, then the end of its traceback."""
    head = f"{type(exc).__name__}: {exc}"
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    text = f"{head}\n{tb}"
    return text if len(text) <= REASON_MAX_CHARS else head + "\n...\n" + tb[-REASON_MAX_CHARS:]


def oom_advice(batch_plan: tuple[int, int, int] | None, exc: BaseException) -> str:
    """First line of an OOM reason: what the next attempt will do about it.

    Args:
        batch_plan: ``(micro_batch, accumulation, divisor)`` the job ran with, if it split its
            batch through ``JobContext.micro_batch``.
        exc: what the job raised.
    """
    from ablate.errors import BatchCannotShrink

    if isinstance(exc, BatchCannotShrink):
        return ""
    if batch_plan is None:
        return "out of memory (the job does not split its batch; a retry runs the same)\n"
    micro, accumulation, _ = batch_plan
    if micro % 2:
        return f"out of memory at micro-batch {micro}: cannot shrink further\n"
    return (
        f"out of memory at micro-batch {micro} x {accumulation}; a retry runs micro-batch "
        f"{micro // 2} x {accumulation * 2} (same effective batch)\n"
    )


def batch_metrics(batch_plan: tuple[int, int, int] | None) -> dict[str, float]:
    """The micro-batch plan the job ran with, as metrics of its record (none if it had none)."""
    if batch_plan is None:
        return {}
    micro, accumulation, divisor = batch_plan
    return {
        "train/micro_batch": float(micro),
        "train/accumulation_steps": float(accumulation),
        "train/micro_batch_divisor": float(divisor),
    }


def disk_full_advice(exc: BaseException) -> str:
    """First line of a reason when a write ran out of disk space or quota ('' otherwise).

    Without it a full disk reads as a bare ``OSError`` deep in a traceback; the line names the
    file (the store's writers name it: :mod:`ablate.store.files`) and what to do.
    """
    if not isinstance(exc, OSError) or exc.errno not in (errno.ENOSPC, errno.EDQUOT):
        return ""
    where = f" while writing {exc.filename}" if exc.filename else ""
    return (
        f"disk full ({exc.strerror}){where}; free some space and rerun: the run resumes from "
        "its last checkpoint\n"
    )


def failed_outcome(exc: BaseException, batch_plan: tuple[int, int, int] | None) -> dict[str, Any]:
    """Record fields of an attempt whose job raised ``exc`` (not on request)."""
    kind = classify_failure(exc)
    reason = disk_full_advice(exc) + failure_text(exc)
    if kind is FailureKind.OOM:
        reason = oom_advice(batch_plan, exc) + reason
    return {
        "status": AttemptStatus.FAILED,
        "failure_kind": kind,
        "failure_reason": reason,
        "metrics": batch_metrics(batch_plan),
    }


def cancelled_outcome(run_dir: Path, reason: str) -> dict[str, Any]:
    """A stop on request; a stop for running past the timeout is a failure (it uses budget)."""
    if read_stop_reason(run_dir) == "timeout":
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


def as_metrics(raw: Any) -> dict[str, float]:
    """A job's return value as ``dict[str, float]``.

    Raises:
        TypeError: not a dict, or a value that is not a number (the attempt fails, naming it).
    """
    if not isinstance(raw, dict):
        raise TypeError(f"a job must return dict[str, float], got {type(raw).__name__}")
    metrics = {}
    for key, value in raw.items():
        try:
            metrics[str(key)] = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"metric {key!r} is not a number: {value!r}") from None
    return metrics
