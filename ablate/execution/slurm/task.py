"""What runs inside a SLURM task: a supervisor that starts the worker and requeues on preemption.

submitit unpickles a :class:`SlurmAttempt` in the task and calls it. It starts the usual worker
(``python -m ablate.execution.worker RUN_DIR --attempt N``), which writes its own record into the
shared store, exactly as under the ``local`` executor.

Why a supervisor process around the worker instead of running the job inside submitit's process:
on preemption or time limit SLURM sends ``USR2`` (``--signal=USR2@signal_delay_s``); submitit
calls :meth:`SlurmAttempt.checkpoint`, which SIGTERMs the worker and waits for it to checkpoint and
record the attempt cancelled, then submitit requeues the task. The requeued task starts the next
attempt, which resumes from the training checkpoint. A worker that dies without a record (killed,
out of memory) gets one from the supervisor, and a task that did not succeed raises, so SLURM
shows it ``FAILED``, never ``COMPLETED``.

No orchestrator waits for a detached task, so the supervisor also reports to MLflow (when the
sweep is tracked) what the orchestrator's tracker would have: the attempt starting, then its end; an
attempt stopped by a preemption is reported by the requeued task before its own attempt (see
:mod:`ablate.tracking.detached`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from submitit.helpers import Checkpointable, DelayedSubmission

from ablate.execution.claims import RunClaim, claim_holder, try_claim
from ablate.execution.lost_attempts import lost_attempt_record, read_log_tail
from ablate.execution.slurm.watch import SLURM_JOB_FILE
from ablate.execution.worker import EXIT_CANCELLED, PARENT_PID_ENV, worker_pythonpath
from ablate.store.files import write_atomic
from ablate.store.layout import RunsLayout
from ablate.store.record import AttemptStatus
from ablate.store.results_store import ResultsStore
from ablate.store.run_folder import LOG_FILE, STOP_REASON_FILE, planned_run_of, read_run_meta
from ablate.tracking.config import public_uri, redact_value, remember_secrets
from ablate.tracking.detached import tracking_of

CANCELLED_WAIT_S = 5.0  # after a worker stopped on SIGTERM, how long to wait for submitit's USR2
POLL_S = 0.5
THREAD_ENVS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")  # set to the task's CPUs for the worker


def _ignore_checkpoint_signal() -> None:
    """In the worker: ignore USR2, the supervisor's checkpoint signal.

    ``scancel --signal`` reaches every process of the step, and USR2's default action would kill
    the worker before it checkpoints.
    """
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)


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
        attached: an orchestrator waits for this task (``ablate tune`` on SLURM, see
            :mod:`ablate.execution.slurm.executor`): it holds the run's claim, tracks the
            attempt and decides what follows a preemption, so the task runs exactly ``attempt``,
            takes no claim, reports nothing to MLflow and is never requeued.
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
        attached: bool = False,
    ) -> None:
        self.attached = attached
        self.run_dir = Path(run_dir)
        self.attempt = attempt
        self.runs_root = Path(runs_root)
        self.env = dict(env)
        self.python = python
        self.grace_s = grace_s
        self._proc: subprocess.Popen | None = None
        self._started_at = time.time()

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
        if done:  # this attempt (or a later one) already succeeded: a requeue after the end
            self._log(f"job {job}: attempt {done[0].attempt} already succeeded; nothing to do")
            return {"run_id": run_id, "attempt": done[0].attempt, "status": "success"}
        # A task requeued after its attempt wrote a record runs the next attempt number.
        attempt = self.attempt if self.attached else max(self.attempt, store.next_attempt(run_id))
        claim = None if self.attached else self._claim(run_id, attempt, job)
        try:
            (self.run_dir / STOP_REASON_FILE).unlink(missing_ok=True)
            started = {"job_id": job, "attempt": attempt, "started_at": time.time()}
            write_atomic(
                self.run_dir / SLURM_JOB_FILE,
                json.dumps({**started, **(tracking_of(self.env, public=True) or {})}),
            )
            self._track(store, start_attempt=attempt)
            returncode = self._run_worker(attempt, job, claim.fd if claim else None)
            record = next((r for r in store.attempts_of(run_id) if r.attempt == attempt), None)
            if record is None:
                record = self._record_lost(store, attempt, returncode)
            self._track(store)
        finally:
            if claim is not None:
                claim.release()
        cancelled = returncode == EXIT_CANCELLED and record.status is AttemptStatus.CANCELLED
        if cancelled and not self.attached:
            # SIGTERM: a preemption sends USR2 right after it (submitit then requeues this task
            # from :meth:`checkpoint`); a plain scancel does not, and the task ends cancelled.
            time.sleep(CANCELLED_WAIT_S)
        if record.status is not AttemptStatus.SUCCESS:
            raise RuntimeError(
                f"{run_id} attempt {attempt} {record.status.value}: "
                f"{(record.failure_reason or '').splitlines()[0] if record.failure_reason else ''}"
            )
        return {"run_id": run_id, "attempt": attempt, "status": record.status.value}

    def _claim(self, run_id: str, attempt: int, job: str) -> RunClaim:
        """Claim the run for this task; raise (task FAILED) when another process runs it."""
        layout = RunsLayout(self.runs_root)
        meta = read_run_meta(self.run_dir)
        claim = try_claim(layout, run_id, sweep=meta["sweep"], attempt=attempt, slurm_job=job)
        if claim is None:
            holder = claim_holder(layout, run_id) or {}
            note = {"job_id": job, "attempt": attempt, "held_by": holder}
            write_atomic(self.run_dir / SLURM_JOB_FILE, json.dumps(note, default=str))
            raise RuntimeError(
                f"{run_id} is being run by pid {holder.get('pid', '?')} on "
                f"{holder.get('host', '?')}; this task stops without running it"
            )
        return claim

    def _track(self, store: ResultsStore, start_attempt: int | None = None) -> None:
        """Report ended attempts to MLflow, then (``start_attempt``) the one starting now.

        No orchestrator waits for a SLURM task, so the task reports its own attempts
        (:mod:`ablate.tracking.detached`). Untracked sweeps skip this; a tracking failure is
        logged and never fails the run.
        """
        from ablate.tracking.detached import report_attempt_start, report_ended_attempts

        tracking = tracking_of(self.env)
        if tracking is None or self.attached:  # attached: the orchestrator's tracker reports
            return
        remember_secrets(self.env)  # the profile's secrets are masked in the uploaded log too
        try:
            if start_attempt is None:
                report_ended_attempts(store, self.run_dir, tracking)
            else:  # reports the ended attempts first, in a thread: the worker starts at once
                report_attempt_start(self.run_dir, self.runs_root, start_attempt, tracking)
        except Exception as exc:  # noqa: BLE001 - tracking must never fail a run
            where = public_uri(tracking["tracking_uri"])
            self._log(f"tracking: could not report to {where}: {redact_value(repr(exc))}")

    def worker_env(self) -> dict[str, str]:
        """The worker's environment: the task's, the profile's, and threads = the task's CPUs.

        Without ``OMP_NUM_THREADS`` torch starts one thread per core of the node, so tasks that
        share a node would oversubscribe it; the task's ``--cpus-per-task`` is the right number
        (a profile's ``env`` still wins).
        """
        env = {**os.environ, **self.env}
        cpus = os.environ.get("SLURM_CPUS_PER_TASK")
        if cpus and cpus.isdigit():
            for name in THREAD_ENVS:
                if name not in self.env:
                    env[name] = cpus
        env["PYTHONPATH"] = worker_pythonpath(env)
        env[PARENT_PID_ENV] = str(os.getpid())
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _run_worker(self, attempt: int, job: str, claim_fd: int | None) -> int:
        env = self.worker_env()
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
        self._started_at = time.time()
        with (self.run_dir / LOG_FILE).open("ab") as log:
            log.write(f"\n===== attempt {attempt} in slurm:{job} =====\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                pass_fds=(claim_fd,) if claim_fd is not None else (),
                preexec_fn=_ignore_checkpoint_signal,
            )
            while self._proc.poll() is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._proc.wait(timeout=POLL_S)
        return self._proc.returncode

    def _record_lost(self, store: ResultsStore, attempt: int, returncode: int | None) -> Any:
        record = lost_attempt_record(
            planned_run_of(self.run_dir),
            sweep=str(read_run_meta(self.run_dir)["sweep"]),
            attempt=attempt,
            stopped_for=None,
            returncode=returncode,
            log_tail=read_log_tail(self.run_dir / LOG_FILE),
            started_at=self._started_at,
            run_dir=self.run_dir,
            slot="slurm",
            executor="slurm",
        )
        store.write(record)
        return record

    def checkpoint(self, *args: Any, **kwargs: Any) -> DelayedSubmission | None:
        """Preempted or out of time (submitit's USR2 handler): stop the worker, then requeue.

        The worker checkpoints and records this attempt cancelled; the requeued task runs the
        next attempt, which resumes from that checkpoint. An attached task is not requeued
        (``None``): its orchestrator sees the cancelled attempt and decides.
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
        if self.attached:
            return None
        # No tracking here: requeue before SLURM's deadline; the requeued task (or `ablate
        # status`) reports this cancelled attempt before it starts the next one.
        return DelayedSubmission(self, *args, **kwargs)
