"""The ``slurm`` executor: attempts become SLURM jobs, submitted through submitit.

``ablate sweep --runner slurm`` submits detached: the sweep loop plans, writes each run's
``spec.json`` and hands every attempt to :meth:`SlurmExecutor.submit_many`, which submits one job
array per chunk of runs (``%N`` caps how many run at once); the loop returns and the cluster runs
the sweep. Each array task is a :class:`~ablate.execution.slurm.task.SlurmAttempt`, a thin
supervisor that starts the usual worker (``python -m ablate.execution.worker RUN_DIR --attempt
N``), so the worker writes its own record into the shared store, exactly as under the ``local``
executor; a detached task claims its run, reports to MLflow and is requeued on preemption itself.

A caller that waits (``ablate tune --runner slurm``: it prunes trials and asks for new ones as old
ones end) submits attached requests: one job per attempt, never requeued, polled through its
:class:`~ablate.execution.slurm.jobs.SlurmJobHandle` like a local worker, while the caller keeps
the run's claim, tracks the attempt and records a job that died without a record.

``ablate status`` (and ``ablate sweep --wait``) follow a detached sweep from the store alone: each
run folder keeps ``slurm.json`` (job id, attempt, submit time, MLflow child run); see
:mod:`ablate.execution.slurm.watch`.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import submitit
from submitit.core.utils import FailedJobError

from ablate.errors import AblateError
from ablate.execution.base import AttemptRequest, Executor, JobHandle
from ablate.execution.registry import register_executor
from ablate.execution.runner_profile import SlurmResources
from ablate.execution.slurm.jobs import STATE_POLL_S, SlurmJobHandle, SlurmJobStates
from ablate.execution.slurm.task import SLURM_JOB_FILE, SlurmAttempt
from ablate.execution.slurm.watch import LIVE_STATES, slurm_available, slurm_run_states
from ablate.store.files import write_atomic
from ablate.store.layout import RunsLayout
from ablate.tracking.detached import report_queued, tracking_of

if TYPE_CHECKING:
    from ablate.execution.runner_profile import SlurmProfile
    from ablate.store.results_store import ResultsStore

SUBMITIT_DIR = "slurm"  # under runs/.store/: submitit's pickles and per-task logs


class SlurmSubmitError(AblateError):
    """sbatch refused a job array (bad partition, account, QOS, or resources the cluster lacks)."""


class SlurmExecutor(Executor):
    """Submits attempts as SLURM jobs: job arrays when detached, one job each when attached.

    Args:
        resources: what each task asks for.
        runs_root: the runs root; must be on a file system the compute nodes share.
        env: extra environment for every worker (runner profile ``env``).
        grace_s: seconds a preempted worker gets to checkpoint (keep below ``signal_delay_s``).
        python: the interpreter for the job and the worker (default: this one).
        poll_s: the most often SLURM is asked about the states of attached jobs.
    """

    name = "slurm"
    detachable = True

    def __init__(
        self,
        resources: SlurmResources,
        *,
        runs_root: Path,
        env: dict[str, str] | None = None,
        grace_s: float = 30.0,
        python: str = sys.executable,
        poll_s: float = STATE_POLL_S,
    ) -> None:
        self.resources = resources
        self.runs_root = Path(runs_root).resolve()
        self.env = dict(env or {})
        self.grace_s = grace_s
        self.python = python
        self.jobs = SlurmJobStates(poll_s)

    @property
    def capacity(self) -> int:
        """Jobs at once (the profile's ``array_parallelism`` or ``--max-parallel``)."""
        return self.resources.array_parallelism

    def free_slots(self) -> int:
        """Jobs that may be submitted now (capacity less the jobs followed)."""
        return self.capacity - self.jobs.watched()

    def check_ready(self) -> None:
        """Raise :class:`SlurmSubmitError` unless a SLURM controller answers here."""
        why_not = slurm_available()
        if why_not is not None:
            raise SlurmSubmitError(f"cannot submit to SLURM: {why_not}")

    def queued_runs(self, store: ResultsStore, sweep: str) -> dict[str, str]:
        """Runs of ``sweep`` whose SLURM job from an earlier submission still lives."""
        return {
            run_id: f"SLURM job {info['job_id']} is {info['state'].lower()}"
            for run_id, info in slurm_run_states(store, sweep).items()
            if info.get("state") in LIVE_STATES
        }

    def release(self, handle: JobHandle) -> None:
        """The attempt has ended: stop asking SLURM about it."""
        if isinstance(handle, SlurmJobHandle):
            self.jobs.forget(handle.job_id)

    # ------------------------------------------------------------------------ submission
    def _launch(self, requests: list[AttemptRequest]) -> list[JobHandle]:
        """Detached requests as job arrays, attached ones as one job each; handles in order."""
        detached = [r for r in requests if r.detached]
        job_ids = dict(zip((id(r) for r in detached), self.submit_arrays(detached), strict=True))
        trackings = [t for r in detached if (t := tracking_of(r.env)) is not None]
        if trackings:  # tracked runs show as queued in MLflow until their task starts
            report_queued(self.runs_root, trackings)
        handles: list[JobHandle] = []
        for request in requests:
            job_id = job_ids.get(id(request)) or self._submit_one(request)
            handles.append(SlurmJobHandle(request, job_id, self.jobs))
        return handles

    def submit_arrays(self, requests: list[AttemptRequest]) -> list[str]:
        """Submit detached attempts as job arrays of at most ``array_chunk`` tasks; the job ids.

        Writes ``slurm.json`` (job id, attempt) into each run folder.
        """
        job_ids: list[str] = []
        size = max(1, self.resources.array_chunk)
        for start in range(0, len(requests), size):
            chunk = requests[start : start + size]
            executor = self.submitit_executor(chunk[0].sweep)
            try:
                jobs = self._submit_chunk(executor, chunk)
            except FailedJobError as err:
                raise SlurmSubmitError(
                    f"sbatch refused the job array for sweep {chunk[0].sweep!r}: "
                    f"{str(err).strip()} (asked for {self.resources.describe()}; "
                    "fix the runner profile: runners/slurm.yaml or --runner FILE)"
                ) from None
            for request, job in zip(chunk, jobs, strict=True):
                info = {
                    "job_id": job.job_id,
                    "attempt": request.attempt,
                    "submitted_at": time.time(),
                    "folder": str(job.paths.folder),
                    **(tracking_of(request.env) or {}),
                }
                write_atomic(request.run_dir / SLURM_JOB_FILE, json.dumps(info, sort_keys=True))
                job_ids.append(job.job_id)
        return job_ids

    def _submit_one(self, request: AttemptRequest) -> str:
        """Submit an attached attempt as a job of its own (never requeued); its job id."""
        executor = self.submitit_executor(request.sweep, array=False)
        job = executor.submit(self.task(request))
        info = {
            "job_id": job.job_id,
            "attempt": request.attempt,
            "submitted_at": time.time(),
            "attached": True,
        }
        write_atomic(request.run_dir / SLURM_JOB_FILE, json.dumps(info, sort_keys=True))
        return str(job.job_id)

    def submitit_executor(self, sweep: str, *, array: bool = True) -> submitit.SlurmExecutor:
        """Submitit's executor for ``sweep``'s jobs (pickles and logs in runs/.store/slurm/).

        ``array=False``: single jobs for a caller that waits, never requeued by submitit.
        """
        folder = RunsLayout(self.runs_root).store_dir / SUBMITIT_DIR / sweep / "%j"
        executor = submitit.SlurmExecutor(
            folder=folder,
            max_num_timeout=self.resources.max_requeues if array else 0,
            python=self.python,
        )
        params = self.resources.submitit_parameters(f"ablate-{sweep}")
        if not array:
            params.pop("array_parallelism")
        executor.update_parameters(**params)
        return executor

    def task(self, request: AttemptRequest) -> SlurmAttempt:
        """The :class:`SlurmAttempt` that runs ``request`` inside a SLURM task."""
        env = {**self.env, **request.env}
        return SlurmAttempt(
            request.run_dir.resolve(),
            request.attempt,
            runs_root=self.runs_root,
            env=env,
            python=self.python,
            grace_s=self.grace_s,
            attached=not request.detached,
        )

    def _submit_chunk(
        self, executor: submitit.SlurmExecutor, chunk: list[AttemptRequest]
    ) -> list[Any]:
        with executor.batch():
            jobs = [executor.submit(self.task(r)) for r in chunk]
        return jobs


@register_executor("slurm")
def slurm_executor(
    profile: SlurmProfile, store: ResultsStore, *, max_parallel: int | None = None
) -> SlurmExecutor:
    """The executor a ``slurm`` runner profile describes (``max_parallel`` caps ``%N``)."""
    resources = profile.resources(max_parallel)
    grace = min(profile.grace_s, max(5.0, profile.signal_delay_s - 10.0))
    return SlurmExecutor(resources, runs_root=store.root, env=profile.env, grace_s=grace)
