"""The ``slurm`` executor: a sweep becomes SLURM job arrays, submitted through submitit.

``ablate sweep --runner slurm`` plans the sweep, writes each run's ``spec.json``, submits one job
array per chunk of runs (``%N`` caps how many run at once) and returns: the cluster runs the
sweep, not the orchestrator. Each array task is a :class:`SlurmAttempt`, a thin supervisor that
starts the usual worker (``python -m ablate.execution.worker RUN_DIR --attempt N``) so the worker
writes its own record into the shared store, exactly as under the ``local`` executor.

Why a supervisor process around the worker instead of running the job inside submitit's process:
on preemption or time limit SLURM sends ``USR2`` (``--signal=USR2@signal_delay_s``); submitit
calls :meth:`SlurmAttempt.checkpoint`, which SIGTERMs the worker and waits for it to checkpoint and
record the attempt cancelled, then submitit requeues the task. The requeued task starts the next
attempt, which resumes from the training checkpoint. A worker that dies without a record (killed,
out of memory) gets one from the supervisor, and a task that failed exits non-zero, so SLURM shows
it ``FAILED``, never ``COMPLETED``.

``ablate status`` reattaches from the store alone: each run folder keeps ``slurm.json`` (job id,
attempt, submit time), :func:`slurm_run_states` asks SLURM (``squeue``, then ``scontrol``) which
of those jobs still live, and :func:`record_lost_slurm_attempts` records the ones that ended
without a record (the node died, the job was killed before its worker started).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
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
from submitit.helpers import Checkpointable, DelayedSubmission

import ablate
from ablate.errors import AblateError
from ablate.execution.attempt import (
    LOG_FILE,
    STOP_REASON_FILE,
    read_run_meta,
    write_atomic,
    write_run_files,
)
from ablate.execution.base import AttemptRequest
from ablate.execution.worker import EXIT_CANCELLED, PARENT_PID_ENV
from ablate.store.layout import RunsLayout
from ablate.store.record import AttemptStatus
from ablate.store.results_store import ResultsStore
from ablate.tracking.config import STREAM_ENV

if TYPE_CHECKING:
    from ablate.execution.runner_profile import RunnerProfile
    from ablate.orchestrate.outcomes import SweepResult
    from ablate.orchestrate.plan import PlanEntry
    from ablate.orchestrate.progress import SweepProgress
    from ablate.orchestrate.tracker import Tracker
    from ablate.spec.sweep import Sweep

SLURM_JOB_FILE = "slurm.json"  # in each run folder: the SLURM job running its latest attempt
SUBMITIT_DIR = "slurm"  # under runs/.store/: submitit's pickles and per-task logs
LIVE_STATES = frozenset(
    {
        "PENDING",
        "RUNNING",
        "CONFIGURING",
        "COMPLETING",
        "REQUEUED",
        "REQUEUE_HOLD",
        "REQUEUE_FED",
        "RESIZING",
        "SUSPENDED",
        "STOPPED",
        "SIGNALING",
        "STAGE_OUT",
        "RESV_DEL_HOLD",
    }
)
CANCELLED_WAIT_S = 5.0  # after a worker stopped on SIGTERM, how long to wait for submitit's USR2
POLL_S = 0.5


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


def source_pythonpath(env: dict[str, str]) -> str:
    """``PYTHONPATH`` that lets a job import this checkout of ``ablate`` (as the local executor)."""
    source_root = str(Path(ablate.__file__).resolve().parent.parent)
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if Path(source_root).name not in ("site-packages", "dist-packages"):
        paths.insert(0, source_root)
    return os.pathsep.join(dict.fromkeys(paths))


def _ignore_checkpoint_signal() -> None:
    """In the worker: ignore USR2, the supervisor's checkpoint signal.

    ``scancel --signal`` reaches every process of the step, and USR2's default action would kill
    the worker before it checkpoints.
    """
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)


class SlurmSubmitError(AblateError):
    """sbatch refused a job array (bad partition, account, QOS, or resources the cluster lacks)."""


class SlurmAttempt(Checkpointable):
    """One attempt of one run inside a SLURM task: start the worker, supervise it, requeue.

    Pickled by submitit at submission and unpickled in the job; holds only plain data.

    Args:
        run_dir: the run folder holding ``spec.json``.
        attempt: the attempt number chosen at submission (a requeued task takes the next free one).
        runs_root: the runs root (the shared store).
        env: extra environment for the worker (profile env, tracker ids, git state).
        python: the interpreter for the worker.
        grace_s: seconds the worker gets to checkpoint after SIGTERM before SIGKILL.
        force: run even when the run already succeeded (``--force``).
    """

    def __init__(
        self,
        run_dir: Path,
        attempt: int,
        *,
        runs_root: Path,
        env: dict[str, str],
        python: str,
        grace_s: float,
        force: bool = False,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.attempt = attempt
        self.runs_root = Path(runs_root)
        self.env = dict(env)
        self.python = python
        self.grace_s = grace_s
        self.force = force
        self._proc: subprocess.Popen | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_proc"] = None  # a running process never travels in the requeue pickle
        return state

    def _log(self, text: str) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with (self.run_dir / LOG_FILE).open("a", encoding="utf-8") as log:
            log.write(f"[ablate slurm] {stamp} {text}\n")

    def __call__(self) -> dict[str, Any]:
        """Run the attempt in the SLURM task; raises when it did not succeed (task FAILED)."""
        from ablate.orchestrate.claims import try_claim

        store = ResultsStore(self.runs_root)
        run_id = self.run_dir.name
        job_id = os.environ.get("SLURM_ARRAY_JOB_ID", os.environ.get("SLURM_JOB_ID", "?"))
        task = os.environ.get("SLURM_ARRAY_TASK_ID")
        job = f"{job_id}_{task}" if task else job_id
        done = [
            r
            for r in store.attempts_of(run_id)
            if r.status is AttemptStatus.SUCCESS and r.attempt >= self.attempt
        ]
        if done and not self.force:
            self._log(f"job {job}: attempt {done[0].attempt} already succeeded; nothing to do")
            return {"run_id": run_id, "attempt": done[0].attempt, "status": "success"}
        # A task requeued after its attempt wrote a record runs the next attempt number.
        attempt = max(self.attempt, store.next_attempt(run_id))
        meta = read_run_meta(self.run_dir)
        claim = try_claim(
            RunsLayout(self.runs_root), run_id, sweep=meta["sweep"], attempt=attempt, slurm_job=job
        )
        if claim is None:
            raise RuntimeError(f"{run_id} is being run by another process; this task stops")
        try:
            (self.run_dir / STOP_REASON_FILE).unlink(missing_ok=True)
            write_atomic(
                self.run_dir / SLURM_JOB_FILE,
                json.dumps({"job_id": job, "attempt": attempt, "started_at": time.time()}),
            )
            returncode = self._run_worker(attempt, job, claim.fd)
            record = next((r for r in store.attempts_of(run_id) if r.attempt == attempt), None)
            if record is None:
                record = self._record_lost(store, attempt, returncode)
        finally:
            claim.release()
        if returncode == EXIT_CANCELLED and record.status is AttemptStatus.CANCELLED:
            # SIGTERM: a preemption sends USR2 right after it (submitit then requeues this task
            # from :meth:`checkpoint`); a plain scancel does not, and the task ends cancelled.
            deadline = time.monotonic() + CANCELLED_WAIT_S
            while time.monotonic() < deadline:
                time.sleep(0.1)
        if record.status is not AttemptStatus.SUCCESS:
            raise RuntimeError(
                f"{run_id} attempt {attempt} {record.status.value}: "
                f"{(record.failure_reason or '').splitlines()[0] if record.failure_reason else ''}"
            )
        return {"run_id": run_id, "attempt": attempt, "status": record.status.value}

    def _run_worker(self, attempt: int, job: str, claim_fd: int) -> int:
        env = {**os.environ, **self.env}
        env["PYTHONPATH"] = source_pythonpath(env)
        env[PARENT_PID_ENV] = str(os.getpid())
        env["PYTHONUNBUFFERED"] = "1"
        command = [
            self.python,
            "-m",
            "ablate.execution.worker",
            str(self.run_dir),
            "--attempt",
            str(attempt),
            "--runs-root",
            str(self.runs_root),
            "--executor",
            "slurm",
        ]
        with (self.run_dir / LOG_FILE).open("ab") as log:
            log.write(f"\n===== attempt {attempt} in slurm:{job} =====\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                pass_fds=(claim_fd,),
                preexec_fn=_ignore_checkpoint_signal,
            )
            while self._proc.poll() is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._proc.wait(timeout=POLL_S)
        return self._proc.returncode

    def _record_lost(self, store: ResultsStore, attempt: int, returncode: int | None) -> Any:
        from ablate.execution.local import read_log_tail
        from ablate.orchestrate.outcomes import lost_attempt_record
        from ablate.spec.run_spec import load_run_spec

        meta = read_run_meta(self.run_dir)
        run = SimpleNamespace(
            spec=load_run_spec(self.run_dir / "spec.json"), axes=dict(meta.get("axes") or {})
        )
        record = lost_attempt_record(
            run,
            sweep=str(meta["sweep"]),
            attempt=attempt,
            stopped_for=None,
            returncode=returncode,
            log_tail=read_log_tail(self.run_dir / LOG_FILE),
            started_at=time.time(),
            run_dir=self.run_dir,
            slot="slurm",
            executor="slurm",
        )
        store.write(record)
        return record

    def checkpoint(self, *args: Any, **kwargs: Any) -> DelayedSubmission:
        """Preempted or out of time (submitit's USR2 handler): stop the worker, then requeue.

        The worker checkpoints and records this attempt cancelled; the requeued task runs the
        next attempt, which resumes from that checkpoint.
        """
        proc = self._proc
        if proc is not None and proc.poll() is None:
            self._log("preempted or out of time: stopping the worker, then requeueing")
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=self.grace_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        else:
            self._log("preempted or out of time: requeueing")
        return DelayedSubmission(self, *args, **kwargs)


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
def _query_states(job_ids: list[str]) -> dict[str, str]:
    """SLURM state per job id (``123_4``): ``squeue`` for live jobs, else ``scontrol``."""
    states: dict[str, str] = {}
    if not job_ids:
        return states
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        out = subprocess.run(
            ["squeue", "-h", "-r", "-o", "%i %T"], capture_output=True, text=True, timeout=30
        )
        for line in out.stdout.splitlines():
            parts = line.split()
            if len(parts) == 2:
                states[parts[0]] = parts[1]
    for job_id in job_ids:
        if job_id in states:
            continue
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            out = subprocess.run(
                ["scontrol", "-o", "show", "job", job_id],
                capture_output=True,
                text=True,
                timeout=30,
            )
            for token in out.stdout.split():
                if token.startswith("JobState="):
                    states[job_id] = token.split("=", 1)[1]
                    break
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


def record_lost_slurm_attempts(store: ResultsStore, sweep: str) -> list[Any]:
    """Record attempts whose SLURM job ended without any record (node lost, killed early).

    Returns:
        The records written (failed, ``killed``, with SLURM's state in the reason).
    """
    from ablate.orchestrate.outcomes import lost_attempt_record
    from ablate.spec.run_spec import load_run_spec

    written = []
    states = slurm_run_states(store, sweep)
    controller_down = slurm_available() is not None
    for run_id, info in states.items():
        if info["state"] in LIVE_STATES or (info["state"] == "UNKNOWN" and controller_down):
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
