"""Records of attempts whose worker ended without writing one, and the log tail they quote.

An attempt normally records itself (the worker writes its record). When a worker dies without
one (SIGKILL, the kernel's OOM killer, a timeout or a stop that ran past the grace period, a SLURM
node lost), whoever watched it writes the record from what it knows: why it stopped the worker,
if it did, the exit status and the end of the log. The sweep loop, a SLURM task and ``ablate
status`` following a detached sweep all build it here.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ablate.store.provenance import git_state, host_name, package_versions
from ablate.store.record import AttemptRecord, AttemptStatus, FailureKind

if TYPE_CHECKING:
    from ablate.spec.sweep import PlannedRun

LOG_TAIL_BYTES = 4000  # read from the end of worker.log
LOG_TAIL_CHARS = 3000  # quoted in a record's failure reason


def read_log_tail(path: Path, max_bytes: int = LOG_TAIL_BYTES) -> str:
    """The last ``max_bytes`` of a log file ('' if it does not exist)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def describe_exit(returncode: int | None) -> str:
    """``exit code 1`` or ``signal SIGKILL``."""
    if returncode is None:
        return "an unknown status"
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit code {returncode}"


def lost_attempt_record(
    run: PlannedRun,
    *,
    sweep: str,
    attempt: int,
    stopped_for: FailureKind | None,
    returncode: int | None,
    log_tail: str,
    started_at: float,
    run_dir: Path,
    slot: str | None,
    executor: str,
    signal_name: str | None = None,
    timeout_s: float | None = None,
) -> AttemptRecord:
    """The record of an attempt whose worker ended without writing one.

    Args:
        run: the planned run.
        sweep: the dispatching sweep.
        attempt: the attempt number.
        stopped_for: why the orchestrator stopped it (``cancelled``: Ctrl-C/SIGTERM,
            ``timeout``), or ``None`` if it died on its own (recorded failed, ``killed``).
        returncode: the worker's exit status (negative: the signal that ended it).
        log_tail: the end of the worker's log.
        started_at: when the attempt started.
        run_dir: the run folder.
        slot: the slot it ran in (stands in for the device).
        executor: the executor's name.
        signal_name: the signal that stopped the sweep, for the reason text.
        timeout_s: the timeout it ran past, for the reason text.
    """
    how = describe_exit(returncode)
    if stopped_for is FailureKind.CANCELLED:
        status, kind = AttemptStatus.CANCELLED, FailureKind.CANCELLED
        reason = f"stopped by the orchestrator ({signal_name}); worker ended by {how}"
    elif stopped_for is FailureKind.TIMEOUT:
        status, kind = AttemptStatus.FAILED, FailureKind.TIMEOUT
        reason = f"ran past the {timeout_s or 0:g}s timeout; worker ended by {how}"
    else:
        status, kind = AttemptStatus.FAILED, FailureKind.KILLED
        reason = f"worker ended by {how} without writing a record"
        if returncode == -signal.SIGKILL:
            reason += " (nobody here sent it: the kernel's OOM killer is the usual suspect)"
    if log_tail.strip():
        reason += "\n--- log tail ---\n" + log_tail.strip()[-LOG_TAIL_CHARS:]
    from ablate.tracking.config import redact_value

    reason = redact_value(reason)  # a job may print HF_TOKEN & co. into its log
    spec = run.spec
    git = git_state()
    return AttemptRecord(
        run_id=spec.run_id,
        sweep=sweep,
        attempt=attempt,
        status=status,
        failure_kind=kind,
        failure_reason=reason,
        job=spec.job,
        seed=spec.seed,
        axes=dict(run.axes),
        spec=spec.to_dict(),
        started_at=started_at,
        ended_at=time.time(),
        git_sha=git.sha,
        git_dirty=git.dirty,
        versions=package_versions(),
        host=host_name(),
        device=slot,
        executor=executor,
        run_dir=str(run_dir),
    )
