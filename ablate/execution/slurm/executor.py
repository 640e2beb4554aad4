"""The ``slurm`` executor: a sweep becomes SLURM job arrays, submitted through submitit.

``ablate sweep --runner slurm`` plans the sweep, writes each run's ``spec.json``, submits one job
array per chunk of runs (``%N`` caps how many run at once) and returns: the cluster runs the
sweep, not the orchestrator. Each array task is a :class:`SlurmAttempt`, a thin supervisor that
starts the usual worker (``python -m ablate.execution.worker RUN_DIR --attempt N``) so the worker
writes its own record into the shared store, exactly as under the ``local`` executor.

What happens inside a task (supervision, requeue on preemption, failure states) is in
:mod:`ablate.execution.slurm_task`.

``ablate status`` (and ``ablate sweep --wait``) follow the sweep from the store alone: each run
folder keeps ``slurm.json`` (job id, attempt, submit time, MLflow child run); see
:mod:`ablate.execution.slurm_watch`.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import submitit
from submitit.core.utils import FailedJobError

from ablate.errors import AblateError
from ablate.execution.attempt import write_atomic, write_run_files
from ablate.execution.base import AttemptRequest
from ablate.execution.runner_profile import SlurmResources
from ablate.execution.slurm_task import SLURM_JOB_FILE, SlurmAttempt
from ablate.execution.slurm_watch import LIVE_STATES, slurm_available, slurm_run_states
from ablate.store.layout import RunsLayout
from ablate.store.results_store import ResultsStore
from ablate.tracking.config import STREAM_ENV
from ablate.tracking.detached import report_queued, tracking_of

if TYPE_CHECKING:
    from ablate.execution.runner_profile import SlurmProfile
    from ablate.execution.slurm_attached import AttachedSlurmExecutor
    from ablate.orchestrate.outcomes import SweepResult
    from ablate.orchestrate.plan import PlanEntry
    from ablate.orchestrate.progress import SweepProgress
    from ablate.orchestrate.tracker import Tracker
    from ablate.spec.sweep import Sweep

SUBMITIT_DIR = "slurm"  # under runs/.store/: submitit's pickles and per-task logs


class SlurmSubmitError(AblateError):
    """sbatch refused a job array (bad partition, account, QOS, or resources the cluster lacks)."""


class SlurmExecutor:
    """Submits attempts as SLURM job arrays and returns without waiting (``detached``).

    Args:
        resources: what each task asks for.
        runs_root: the runs root; must be on a file system the compute nodes share.
        env: extra environment for every worker (runner profile ``env``).
        grace_s: seconds a preempted worker gets to checkpoint (keep below ``signal_delay_s``).
        python: the interpreter for the job and the worker (default: this one).
    """

    name = "slurm"
    detached = True  # run_sweep hands the whole sweep to submit_sweep and returns

    def __init__(
        self,
        resources: SlurmResources,
        *,
        runs_root: Path,
        env: dict[str, str] | None = None,
        grace_s: float = 30.0,
        python: str = sys.executable,
    ) -> None:
        self.resources = resources
        self.runs_root = Path(runs_root).resolve()
        self.env = dict(env or {})
        self.grace_s = grace_s
        self.python = python

    # The Executor protocol, for code that inspects any executor; dispatch is submit_sweep.
    @property
    def capacity(self) -> int:
        """Tasks of one array that run at once."""
        return self.resources.array_parallelism

    def free_slots(self) -> int:
        """SLURM queues everything; the cap is the array's ``%N``."""
        return self.capacity

    def bind_stop(self, stop_flag: Callable[[], bool]) -> None:
        """Jobs outlive the orchestrator; they are stopped with ``scancel``."""

    def release(self, handle: Any) -> None:
        """Nothing is held locally."""

    def shutdown(self) -> None:
        """Nothing is held locally."""

    def submit(self, request: AttemptRequest) -> Any:
        """Not used: a detached executor is driven through :meth:`submit_sweep`."""
        raise NotImplementedError("the slurm executor submits whole sweeps (submit_sweep)")

    def attached(self) -> AttachedSlurmExecutor:
        """The same cluster and resources, one job per attempt, for a loop that waits.

        ``ablate tune`` uses it: it prunes trials and samples new ones as old ones end.
        """
        from ablate.execution.slurm_attached import AttachedSlurmExecutor

        return AttachedSlurmExecutor(self)

    # ------------------------------------------------------------------------ submission
    def submit_requests(self, requests: list[AttemptRequest], *, force: bool = False) -> list[str]:
        """Submit attempts as job arrays of at most ``chunk_size`` tasks; returns the job ids.

        Writes ``slurm.json`` (job id, attempt) into each run folder.
        """
        job_ids: list[str] = []
        size = max(1, self.resources.array_chunk)
        for start in range(0, len(requests), size):
            chunk = requests[start : start + size]
            executor = self.submitit_executor(chunk[0].sweep)
            try:
                jobs = self._submit_chunk(executor, chunk, force)
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

    def submitit_executor(self, sweep: str, *, array: bool = True) -> submitit.SlurmExecutor:
        """Submitit's executor for ``sweep``'s jobs (pickles and logs in runs/.store/slurm/).

        ``array=False``: single jobs for an attached orchestrator, never requeued by submitit.
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

    def task(self, request: AttemptRequest, **options: bool) -> SlurmAttempt:
        """The :class:`SlurmAttempt` that runs ``request`` (``force``, ``attached``)."""
        return SlurmAttempt(
            request.run_dir.resolve(),
            request.attempt,
            runs_root=self.runs_root,
            env={**self.env, **request.env},
            python=self.python,
            grace_s=self.grace_s,
            **options,
        )

    def _submit_chunk(
        self, executor: submitit.SlurmExecutor, chunk: list[AttemptRequest], force: bool
    ) -> list[Any]:
        with executor.batch():
            jobs = [executor.submit(self.task(r, force=force)) for r in chunk]
        return jobs

    def submit_sweep(
        self,
        sweep: Sweep,
        *,
        store: ResultsStore,
        retries: int,
        force: bool,
        progress: SweepProgress,
        tracker: Tracker,
    ) -> SweepResult:
        """Plan the sweep, submit every run to dispatch (skipping live SLURM jobs), return.

        Returns:
            A result whose ``not_done`` lists only runs that were neither done nor submitted
            (exhausted retry budget, held elsewhere), so a complete submission exits 0.
        """
        from ablate.orchestrate.outcomes import SweepResult
        from ablate.orchestrate.plan import make_plan
        from ablate.store.provenance import git_env

        why_not = slurm_available()
        if why_not is not None:
            raise SlurmSubmitError(f"cannot submit sweep {sweep.name!r} to SLURM: {why_not}")
        plan = make_plan(sweep, store, retries=retries, force=force)
        progress.start(plan)
        tracker.on_sweep_start(sweep, plan)
        live = {
            run_id: info
            for run_id, info in slurm_run_states(store, sweep.name).items()
            if info.get("state") in LIVE_STATES
        }
        base_env = git_env()
        highest = store.highest_attempts()  # one listing, not one per run
        requests: list[AttemptRequest] = []
        entries: list[PlanEntry] = []
        for entry in plan.entries:
            if not entry.dispatch:
                continue
            if entry.run_id in live:
                progress.message(
                    f"{entry.run_id}: SLURM job {live[entry.run_id]['job_id']} is "
                    f"{live[entry.run_id]['state'].lower()}; not submitted again"
                )
                continue
            attempt = highest.get(entry.run_id, 0) + 1
            run_dir = store.layout.run_dir(sweep.name, entry.run_id)
            write_run_files(
                run_dir, entry.run.spec.to_json(), sweep=sweep.name, axes=entry.run.axes
            )
            env = {**base_env, **(tracker.on_attempt_start(entry.run, attempt) or {})}
            if STREAM_ENV in env:
                env[STREAM_ENV] = "worker"  # no orchestrator stays to forward step metrics
            requests.append(
                AttemptRequest(
                    run_id=entry.run_id,
                    sweep=sweep.name,
                    attempt=attempt,
                    run_dir=run_dir,
                    axes=dict(entry.run.axes),
                    env=env,
                )
            )
            entries.append(entry)
        job_ids = self.submit_requests(requests, force=force) if requests else []
        trackings = [t for r in requests if (t := tracking_of(r.env)) is not None]
        if trackings:
            report_queued(self.runs_root, trackings)
        arrays = sorted({j.split("_")[0] for j in job_ids})
        for entry, request, job_id in zip(entries, requests, job_ids, strict=True):
            progress.attempt_started(entry, request.attempt, f"slurm:{job_id}")
        progress.message(
            f"submitted {len(requests)} run(s) to SLURM as job array(s) {', '.join(arrays) or '-'}"
            f"; `ablate status {sweep.path}{f' --scale {sweep.scale}' if sweep.scale else ''}` "
            "follows them"
        )
        tracker.on_sweep_end(sweep, False)
        submitted = {r.run_id for r in requests} | set(live)
        result = SweepResult(sweep=sweep.name, plan=plan, submitted=[r.run_id for r in requests])
        result.not_done = [
            e.run_id
            for e in plan.entries
            if e.run_id not in submitted and e.history.succeeded_in is None
        ]
        progress.finish(result)
        return result


def slurm_executor(
    profile: SlurmProfile, store: ResultsStore, *, max_parallel: int | None = None
) -> SlurmExecutor:
    """The executor a ``slurm`` runner profile describes (``max_parallel`` caps ``%N``)."""
    resources = profile.resources(max_parallel)
    grace = min(profile.grace_s, max(5.0, profile.signal_delay_s - 10.0))
    return SlurmExecutor(resources, runs_root=store.root, env=profile.env, grace_s=grace)
