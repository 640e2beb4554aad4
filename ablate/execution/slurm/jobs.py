"""SLURM with an orchestrator that waits: one job per attempt, polled like a local worker.

``ablate sweep --runner slurm`` hands the whole sweep to SLURM and returns (detached). A tuner
cannot: it reads each trial's per-epoch metrics to prune it, and asks for the next trial when one
ends. :class:`AttachedSlurmExecutor` gives the orchestrator's loop the same executor interface
as the ``local`` executor (``submit`` one attempt, poll ``done``, ``cancel``, ``kill``), with
each attempt a SLURM job submitted through submitit, so ``ablate tune --runner slurm`` runs its
trials on the cluster while it prunes and samples on the login node.

The orchestrator keeps what it does for local workers: it holds the run's claim, creates and
ends the MLflow run, tails ``metrics.jsonl`` (the runs folder is shared) and writes the record of
an attempt whose job died without one. The task (:class:`SlurmAttempt` with ``attached``) runs
exactly the attempt it was given and is never requeued: a preempted trial is recorded cancelled,
as a Ctrl-C-ed one is, and the next ``ablate tune`` resumes it from its checkpoint.

SLURM is asked about all running jobs at once, at most every ``poll_s`` seconds (one ``squeue``),
however often the loop polls its handles.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

from ablate.execution.attempt import LOG_FILE, PROGRESS_FILE, write_atomic
from ablate.execution.base import AttemptRequest, JobOutcome
from ablate.execution.slurm_task import SLURM_JOB_FILE
from ablate.execution.slurm_watch import LIVE_STATES, UNREACHABLE, query_job_states

if TYPE_CHECKING:
    from ablate.execution.slurm import SlurmExecutor

STATE_POLL_S = 2.0  # at most one squeue per this many seconds for all attached jobs


class SlurmJobHandle:
    """One attempt running as a SLURM job, as the orchestrator's loop sees it."""

    def __init__(self, request: AttemptRequest, job_id: str, owner: AttachedSlurmExecutor) -> None:
        self.request = request
        self.job_id = job_id
        self.started_at = time.time()
        self.slot = SimpleNamespace(label=f"slurm:{job_id}")  # shown by the progress display
        self._owner = owner

    def state(self) -> str:
        """SLURM's state of the job (cached for ``poll_s``)."""
        return self._owner.state_of(self.job_id)

    def done(self) -> bool:
        """The job has left SLURM's queue (SLURM unreachable: not done)."""
        state = self.state()
        return state not in LIVE_STATES and state != UNREACHABLE

    def outcome(self) -> JobOutcome:
        """0 when SLURM says ``COMPLETED``; the log tail for a record the loop has to write."""
        from ablate.execution.local import read_log_tail

        state = self.state()
        return JobOutcome(
            returncode=0 if state == "COMPLETED" else 1,
            slot=self.slot.label,
            log_tail=f"SLURM job {self.job_id} ended {state}\n"
            + read_log_tail(self.request.run_dir / LOG_FILE),
        )

    def progress_file(self) -> Path:
        """The run's ``progress.json`` (on the shared file system)."""
        return self.request.run_dir / PROGRESS_FILE

    def cancel(self) -> None:
        """SIGTERM to the job's processes: the worker checkpoints and records it cancelled."""
        _scancel("--signal=TERM", self.job_id)

    def kill(self) -> None:
        """Cancel the job outright (SLURM sends SIGTERM, then SIGKILL after its KillWait)."""
        _scancel(self.job_id)


def _scancel(*args: str) -> None:
    subprocess.run(["scancel", *args], capture_output=True, text=True, timeout=60, check=False)


class AttachedSlurmExecutor:
    """Submits each attempt as its own SLURM job and lets the orchestrator poll it.

    Args:
        slurm: the detached executor of the same runner profile (resources, runs root, env).
        poll_s: the most often SLURM is asked about the jobs' states.
    """

    name = "slurm"

    def __init__(self, slurm: SlurmExecutor, *, poll_s: float = STATE_POLL_S) -> None:
        self.slurm = slurm
        self.poll_s = poll_s
        self._live: dict[str, SlurmJobHandle] = {}
        self._states: dict[str, str] = {}
        self._asked_at = 0.0

    @property
    def capacity(self) -> int:
        """Jobs at once (the profile's ``array_parallelism`` or ``--max-parallel``)."""
        return self.slurm.resources.array_parallelism

    def free_slots(self) -> int:
        """Jobs that may be submitted now."""
        return self.capacity - len(self._live)

    def bind_stop(self, stop_flag: Callable[[], bool]) -> None:
        """Stops reach the jobs through :meth:`SlurmJobHandle.cancel`."""

    def submit(self, request: AttemptRequest) -> SlurmJobHandle:
        """Submit one job for the attempt; returns at once."""
        executor = self.slurm.submitit_executor(request.sweep, array=False)
        job = executor.submit(self.slurm.task(request, attached=True))
        info = {
            "job_id": job.job_id,
            "attempt": request.attempt,
            "submitted_at": time.time(),
            "attached": True,
        }
        write_atomic(request.run_dir / SLURM_JOB_FILE, json.dumps(info, sort_keys=True))
        handle = SlurmJobHandle(request, str(job.job_id), self)
        self._live[handle.job_id] = handle
        self._states[handle.job_id] = "PENDING"
        return handle

    def state_of(self, job_id: str) -> str:
        """The job's state, asking SLURM about every live job at most every ``poll_s``."""
        now = time.monotonic()
        if now - self._asked_at >= self.poll_s and self._live:
            self._asked_at = now
            self._states.update(query_job_states(sorted(self._live)))
        return self._states.get(job_id, "UNKNOWN")

    def release(self, handle: SlurmJobHandle) -> None:
        """The attempt has ended: stop asking SLURM about it."""
        self._live.pop(handle.job_id, None)

    def shutdown(self) -> None:
        """Nothing is held locally (the loop has stopped or waited for every job)."""
