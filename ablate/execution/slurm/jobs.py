"""A submitted SLURM job as the sweep loop sees it: its handle, and SLURM's state of it.

A caller that waits (``ablate tune --runner slurm``) polls each handle like a local worker's:
``state``, ``done``, ``outcome``, ``cancel``, ``kill``. SLURM is asked about all watched jobs at
once, at most every ``poll_s`` seconds (one ``squeue``), however often the loop polls its
handles. A detached caller gets the same handles back and simply does not poll them.
"""

from __future__ import annotations

import subprocess
import time

from ablate.execution.base import AttemptRequest, JobHandle, JobOutcome
from ablate.execution.lost_attempts import read_log_tail
from ablate.execution.slurm.watch import LIVE_STATES, UNREACHABLE, query_job_states
from ablate.store.run_folder import LOG_FILE

STATE_POLL_S = 2.0  # at most one squeue per this many seconds for all watched jobs


class SlurmJobStates:
    """SLURM's state of every watched job, refreshed all at once at most every ``poll_s``.

    Args:
        poll_s: the most often SLURM is asked.
    """

    def __init__(self, poll_s: float = STATE_POLL_S) -> None:
        self.poll_s = poll_s
        self._states: dict[str, str] = {}
        self._asked_at = 0.0

    def watch(self, job_id: str) -> None:
        """Follow a job just submitted (``PENDING`` until SLURM says otherwise)."""
        self._states[job_id] = "PENDING"

    def forget(self, job_id: str) -> None:
        """Stop asking about a job that has ended."""
        self._states.pop(job_id, None)

    def watched(self) -> int:
        """How many jobs are followed."""
        return len(self._states)

    def state_of(self, job_id: str) -> str:
        """The job's state, asking SLURM about every watched job at most every ``poll_s``."""
        now = time.monotonic()
        if now - self._asked_at >= self.poll_s and self._states:
            self._asked_at = now
            self._states.update(query_job_states(sorted(self._states)))
        return self._states.get(job_id, "UNKNOWN")

    def refresh_now(self) -> None:
        """Ask SLURM at the next :meth:`state_of`, whenever it last asked."""
        self._asked_at = 0.0


class SlurmJobHandle(JobHandle):
    """One attempt submitted as a SLURM job (a task of an array, or a job of its own).

    Args:
        request: the attempt.
        job_id: SLURM's id (``123`` or ``123_4``).
        states: where its state is looked up.
    """

    def __init__(self, request: AttemptRequest, job_id: str, states: SlurmJobStates) -> None:
        super().__init__(request, label=f"slurm:{job_id}")
        self.job_id = job_id
        self._states = states
        states.watch(job_id)

    @property
    def batch(self) -> str:
        """``job array 77`` for a task ``77_4``, else ``job 78``."""
        array, _, task = self.job_id.partition("_")
        return f"job array {array}" if task else f"job {array}"

    @property
    def state(self) -> str:
        """SLURM's state of the job (cached for ``poll_s``)."""
        return self._states.state_of(self.job_id)

    def done(self) -> bool:
        """The job has left SLURM's queue (SLURM unreachable: not done)."""
        state = self.state
        return state not in LIVE_STATES and state != UNREACHABLE

    def outcome(self) -> JobOutcome:
        """0 when SLURM says ``COMPLETED``; the log tail for a record the loop has to write."""
        state = self.state
        return JobOutcome(
            returncode=0 if state == "COMPLETED" else 1,
            slot=self.label,
            log_tail=f"SLURM job {self.job_id} ended {state}\n"
            + read_log_tail(self.request.run_dir / LOG_FILE),
        )

    def cancel(self) -> None:
        """SIGTERM to the job's processes: the worker checkpoints and records it cancelled."""
        scancel("--signal=TERM", self.job_id)

    def kill(self) -> None:
        """Cancel the job outright (SLURM sends SIGTERM, then SIGKILL after its KillWait)."""
        scancel(self.job_id)


def scancel(*args: str) -> None:
    """Run ``scancel`` with ``args`` (a job already gone is not an error)."""
    subprocess.run(["scancel", *args], capture_output=True, text=True, timeout=60, check=False)
