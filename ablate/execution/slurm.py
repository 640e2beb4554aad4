"""The ``slurm`` executor: a sweep becomes SLURM job arrays, submitted through submitit.

``ablate sweep --runner slurm`` plans the sweep, writes each run's ``spec.json``, submits one job
array per chunk of runs (``%N`` caps how many run at once) and returns: the cluster runs the
sweep, not the orchestrator. Each array task is a :class:`SlurmAttempt`, a thin supervisor that
starts the usual worker (``python -m ablate.execution.worker RUN_DIR --attempt N``) so the worker
writes its own record into the shared store, exactly as under the ``local`` executor.

What happens inside a task (supervision, requeue on preemption, failure states) is in
:mod:`ablate.execution.slurm_task`.

``ablate status`` reattaches from the store alone: each run folder keeps ``slurm.json`` (job id,
attempt, submit time), :func:`slurm_run_states` asks SLURM (``squeue``, then ``scontrol``) which
of those jobs still live, and :func:`record_lost_slurm_attempts` records the ones that ended
without a record (the node died, the job was killed before its worker started).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import submitit
from submitit.core.utils import FailedJobError

from ablate.errors import AblateError
from ablate.execution.attempt import read_run_meta, write_atomic, write_run_files
from ablate.execution.base import AttemptRequest
from ablate.execution.slurm_task import SLURM_JOB_FILE, SlurmAttempt
from ablate.store.results_store import ResultsStore
from ablate.tracking.config import STREAM_ENV

if TYPE_CHECKING:
    from ablate.execution.runner_profile import RunnerProfile
    from ablate.orchestrate.outcomes import SweepResult
    from ablate.orchestrate.plan import PlanEntry
    from ablate.orchestrate.progress import SweepProgress
    from ablate.orchestrate.tracker import Tracker
    from ablate.spec.sweep import Sweep

SUBMITIT_DIR = "slurm"  # under runs/.store/: submitit's pickles and per-task logs
LIVE_STATES = frozenset({
    "PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
    "RESIZING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT", "RESV_DEL_HOLD",
})  # fmt: skip


def slurm_available() -> str | None:
    """``None`` when a SLURM controller answers here, else why not (for skips and errors)."""
    if shutil.which("sbatch") is None or shutil.which("squeue") is None:
        return "SLURM client commands (sbatch, squeue) are not installed"
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-o", "%a %t"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"sinfo failed: {exc}"
    if out.returncode != 0:
        return f"no SLURM controller answers: {out.stderr.strip() or out.stdout.strip()}"
    if not any(line.split()[:1] == ["up"] for line in out.stdout.splitlines()):
        return f"no partition is up: {out.stdout.strip()!r}"
    return None


class SlurmSubmitError(AblateError):
    """sbatch refused a job array (bad partition, account, QOS, or resources the cluster lacks)."""


@dataclass
class SlurmResources:
    """What each task asks SLURM for (from the runner profile)."""

    partition: str | None = None
    gpus: int = 0
    cpus: int = 1
    mem_gb: float | None = None
    time_min: int = 60
    qos: str | None = None
    account: str | None = None
    setup: list[str] = field(default_factory=list)
    array_parallelism: int = 64
    chunk_size: int = 1000
    signal_delay_s: int = 90
    max_requeues: int = 3

    def describe(self) -> str:
        """One line for error messages: what each task asks for."""
        parts = [f"partition={self.partition or '<default>'}", f"gpus={self.gpus}"]
        parts += [f"cpus={self.cpus}", f"mem_gb={self.mem_gb}", f"time_min={self.time_min}"]
        parts += [f"{k}={v}" for k, v in (("qos", self.qos), ("account", self.account)) if v]
        return ", ".join(parts)

    def submitit_parameters(self, job_name: str) -> dict[str, Any]:
        """Keyword arguments for ``submitit.SlurmExecutor.update_parameters``."""
        params: dict[str, Any] = {
            "job_name": job_name,
            "time": self.time_min,
            "cpus_per_task": self.cpus,
            "ntasks_per_node": 1,
            "array_parallelism": self.array_parallelism,
            "signal_delay_s": self.signal_delay_s,
            "setup": list(self.setup),
            "stderr_to_stdout": True,
        }
        if self.gpus:
            params["gpus_per_node"] = self.gpus
        optional = {"partition": self.partition, "qos": self.qos, "account": self.account}
        params.update({k: v for k, v in optional.items() if v})
        if self.mem_gb:
            params["mem"] = f"{int(self.mem_gb * 1024)}MB"
        return params


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

    # ------------------------------------------------------------------------ submission
    def submit_requests(self, requests: list[AttemptRequest], *, force: bool = False) -> list[str]:
        """Submit attempts as job arrays of at most ``chunk_size`` tasks; returns the job ids.

        Writes ``slurm.json`` (job id, attempt) into each run folder.
        """
        job_ids: list[str] = []
        size = max(1, self.resources.chunk_size)
        for start in range(0, len(requests), size):
            chunk = requests[start : start + size]
            folder = self.runs_root / ".store" / SUBMITIT_DIR / chunk[0].sweep / "%j"
            executor = submitit.SlurmExecutor(
                folder=folder, max_num_timeout=self.resources.max_requeues, python=self.python
            )
            executor.update_parameters(
                **self.resources.submitit_parameters(f"ablate-{chunk[0].sweep}")
            )
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
                }
                write_atomic(request.run_dir / SLURM_JOB_FILE, json.dumps(info, sort_keys=True))
                job_ids.append(job.job_id)
        return job_ids

    def _submit_chunk(
        self, executor: submitit.SlurmExecutor, chunk: list[AttemptRequest], force: bool
    ) -> list[Any]:
        with executor.batch():
            jobs = [
                executor.submit(
                    SlurmAttempt(
                        r.run_dir.resolve(),
                        r.attempt,
                        runs_root=self.runs_root,
                        env={**self.env, **r.env},
                        python=self.python,
                        grace_s=self.grace_s,
                        force=force,
                    )
                )
                for r in chunk
            ]
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
            attempt = store.next_attempt(entry.run_id)
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
        arrays = sorted({j.split("_")[0] for j in job_ids})
        for entry, request, job_id in zip(entries, requests, job_ids, strict=True):
            progress.attempt_started(entry, request.attempt, f"slurm:{job_id}")
        progress.message(
            f"submitted {len(requests)} run(s) to SLURM as job array(s) {', '.join(arrays) or '-'}"
            f"; `ablate status {sweep.name}` follows them"
        )
        tracker.on_sweep_end(sweep, False)
        submitted = {r.run_id for r in requests} | set(live)
        result = SweepResult(sweep=sweep.name, plan=plan)
        result.not_done = [
            e.run_id
            for e in plan.entries
            if e.run_id not in submitted and e.history.succeeded_in is None
        ]
        progress.finish(result)
        return result


def slurm_executor(
    profile: RunnerProfile, store: ResultsStore, *, max_parallel: int | None = None
) -> SlurmExecutor:
    """The executor a ``slurm`` runner profile describes (``max_parallel`` caps ``%N``)."""
    gpus = profile.gpus if isinstance(profile.gpus, int) else (0 if profile.gpus == "none" else 1)
    if profile.gpus == "auto":
        gpus = 1
    resources = SlurmResources(
        partition=profile.partition,
        gpus=gpus,
        cpus=profile.cpus,
        mem_gb=profile.mem_gb,
        time_min=profile.time_min,
        qos=profile.qos,
        account=profile.account,
        setup=list(profile.setup),
        array_parallelism=max_parallel or profile.max_parallel or profile.array_parallelism,
        chunk_size=profile.array_chunk,
        signal_delay_s=profile.signal_delay_s,
    )
    grace = min(profile.grace_s, max(5.0, profile.signal_delay_s - 10.0))
    return SlurmExecutor(resources, runs_root=store.root, env=profile.env, grace_s=grace)


# ---------------------------------------------------------------------------- reattaching
QUERY_BATCH = 100  # job ids per squeue call
UNREACHABLE = "UNREACHABLE"  # squeue itself failed: nobody can tell whether the job lives


def _run(command: list[str]) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None


def _scontrol_states(array_id: str) -> dict[str, str]:
    """Every task of one job (array) that the controller still remembers (``MinJobAge``)."""
    out = _run(["scontrol", "-o", "show", "job", array_id])
    states: dict[str, str] = {}
    for line in out.stdout.splitlines() if out is not None else []:
        fields = dict(tok.split("=", 1) for tok in line.split() if "=" in tok)
        array, task = fields.get("ArrayJobId"), fields.get("ArrayTaskId", "")
        key = f"{array}_{task}" if array and task.isdigit() else fields.get("JobId", "")
        states.setdefault(key, fields.get("JobState", "UNKNOWN"))
    return states


def _sacct_states(array_ids: list[str]) -> dict[str, str]:
    """States from accounting, for jobs the controller forgot (absent where accounting is off)."""
    out = _run(["sacct", "-n", "-P", "-X", "-j", ",".join(array_ids), "-o", "JobID,State"])
    states: dict[str, str] = {}
    for line in out.stdout.splitlines() if out is not None and out.returncode == 0 else []:
        job_id, _, state = line.partition("|")
        if state:
            states[job_id] = state.split()[0]  # "CANCELLED by 0" -> CANCELLED
    return states


def _query_states(job_ids: list[str]) -> dict[str, str]:
    """SLURM's state per job id (``123_4`` or ``123``), in a few calls whatever the sweep size.

    ``squeue`` (one call per 100 arrays) for live tasks; for the others ``scontrol`` (one call per
    array), then ``sacct``. ``UNKNOWN``: SLURM has forgotten the job. ``UNREACHABLE``: squeue
    failed, so a job that looks gone may still be queued.
    """
    arrays = sorted({j.split("_")[0] for j in job_ids})
    states: dict[str, str] = {}
    for start in range(0, len(arrays), QUERY_BATCH):
        batch = arrays[start : start + QUERY_BATCH]
        out = _run(["squeue", "-h", "-r", "-j", ",".join(batch), "-o", "%i %T"])
        forgotten = out is not None and "Invalid job id" in out.stderr and len(batch) == 1
        if out is None or (out.returncode != 0 and not forgotten):
            return {j: UNREACHABLE for j in job_ids}
        for line in out.stdout.splitlines():
            parts = line.split()
            if len(parts) == 2:
                states[parts[0]] = parts[1]
    missing = sorted({j.split("_")[0] for j in job_ids if j not in states})
    for array_id in missing:
        states.update({k: v for k, v in _scontrol_states(array_id).items() if k not in states})
    still = sorted({j.split("_")[0] for j in job_ids if j not in states})
    if still:
        states.update({k: v for k, v in _sacct_states(still).items() if k not in states})
    return {j: states.get(j, "UNKNOWN") for j in job_ids}


def slurm_run_states(store: ResultsStore, sweep: str) -> dict[str, dict[str, Any]]:
    """The SLURM job of every run folder of ``sweep`` that has one, with its state right now.

    Returns:
        ``{run_id: {"job_id", "attempt", "state", ...}}``; ``state`` is SLURM's (``PENDING``,
        ``RUNNING``, ``COMPLETED``, ``FAILED``, ``CANCELLED``, ...) or ``UNKNOWN`` once SLURM has
        forgotten the job (the store then says how it ended).
    """
    found: dict[str, dict[str, Any]] = {}
    sweep_dir = store.layout.sweep_dir(sweep)
    for path in sorted(sweep_dir.glob(f"*/{SLURM_JOB_FILE}")):
        with contextlib.suppress(OSError, ValueError):
            info = json.loads(path.read_text(encoding="utf-8"))
            found[path.parent.name] = {**info, "run_dir": str(path.parent)}
    states = _query_states([str(i["job_id"]) for i in found.values()])
    for info in found.values():
        info["state"] = states[str(info["job_id"])]
    return found


def record_lost_slurm_attempts(
    store: ResultsStore, sweep: str, states: dict[str, dict[str, Any]] | None = None
) -> list[Any]:
    """Record attempts whose SLURM job ended without any record (node lost, killed early).

    ``states`` (from :func:`slurm_run_states`) saves asking SLURM twice when the caller (``ablate
    status``) shows them too.

    Returns:
        The records written (failed, ``killed``, with SLURM's state in the reason).
    """
    from ablate.orchestrate.outcomes import lost_attempt_record
    from ablate.spec.run_spec import load_run_spec

    written = []
    states = slurm_run_states(store, sweep) if states is None else states
    if any(info["state"] == UNREACHABLE for info in states.values()):
        return []  # cannot tell a queued job from a lost one
    controller_down = slurm_available() is not None
    for run_id, info in states.items():
        if info["state"] in LIVE_STATES or (info["state"] == "UNKNOWN" and controller_down):
            continue
        if info.get("held_by"):  # the task found another process running it: not its attempt
            continue
        attempts = store.attempts_of(run_id)
        if any(r.attempt >= int(info["attempt"]) for r in attempts):
            continue
        run_dir = Path(info["run_dir"])
        meta = read_run_meta(run_dir)
        run = SimpleNamespace(
            spec=load_run_spec(run_dir / "spec.json"), axes=dict(meta.get("axes") or {})
        )
        record = lost_attempt_record(
            run,
            sweep=sweep,
            attempt=int(info["attempt"]),
            stopped_for=None,
            returncode=None,
            log_tail=f"SLURM job {info['job_id']} ended {info['state']} without a record",
            started_at=float(info.get("submitted_at") or time.time()),
            run_dir=run_dir,
            slot=f"slurm:{info['job_id']}",
            executor="slurm",
        )
        store.write(record)
        written.append(record)
    return written
