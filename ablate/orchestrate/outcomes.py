"""What attempts and sweeps came to: the result of a sweep, records for lost attempts.

An attempt normally records itself (the worker writes its record). When a worker dies without
one (SIGKILL, the kernel's OOM killer, a timeout or a stop that ran past the grace period), the
orchestrator writes it from what it knows: why it stopped the worker, if it did, the exit status
and the end of the log.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ablate.store.provenance import git_state, host_name, package_versions
from ablate.store.record import AttemptRecord, AttemptStatus, FailureKind

if TYPE_CHECKING:
    from ablate.orchestrate.plan import Plan
    from ablate.spec.sweep import PlannedRun

EXIT_OK = 0
EXIT_INCOMPLETE = 1
EXIT_INTERRUPTED = 130
LOG_TAIL_CHARS = 3000


@dataclass
class SweepResult:
    """What a sweep invocation did.

    Attributes:
        sweep: the sweep's name.
        plan: the plan it started from.
        records: the records of the attempts it ran, in the order they ended.
        not_done: run ids still not done at the end (failed, exhausted, cancelled, held).
        interrupted: whether SIGINT/SIGTERM stopped it.
        submitted: run ids handed to a detached executor (SLURM), which runs them after this
            invocation returns.
    """

    sweep: str
    plan: Plan
    records: list[AttemptRecord] = field(default_factory=list)
    not_done: list[str] = field(default_factory=list)
    interrupted: bool = False
    submitted: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the end of an invocation."""
        if self.submitted and not self.records:
            return (
                f"submitted {len(self.submitted)} run(s); they run after this command returns; "
                f"{len(self.not_done)} run(s) neither done nor submitted"
            )
        ok = self.count(AttemptStatus.SUCCESS)
        end = "interrupted" if self.interrupted else "finished"
        return (
            f"{end}: {ok} succeeded, {len(self.records) - ok} did not; "
            f"{len(self.not_done)} run(s) not done"
        )

    def count(self, status: AttemptStatus) -> int:
        """Attempts of this invocation that ended with ``status``."""
        return sum(r.status is status for r in self.records)

    @property
    def exit_code(self) -> int:
        """0 when every run is done, 130 after an interrupt, 1 otherwise."""
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_INCOMPLETE if self.not_done else EXIT_OK


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
