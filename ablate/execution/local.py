"""The ``local`` executor: one worker subprocess per attempt, one slot per worker.

Slots are leased GPU indices (the worker sees only its GPU through ``CUDA_VISIBLE_DEVICES``) or,
on a machine without GPUs, N CPU slots with a fixed thread count each. Workers run in their own
session, so a Ctrl-C typed in the terminal reaches only the orchestrator, which then stops them in
order (SIGTERM, grace period, SIGKILL); their stdout and stderr go to ``worker.log`` in the run
folder.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING

from ablate.execution.base import (
    CANCELLED,
    COMPLETED,
    FAILED,
    RUNNING,
    AttemptRequest,
    Executor,
    JobHandle,
    JobOutcome,
)
from ablate.execution.lost_attempts import read_log_tail
from ablate.execution.registry import register_executor
from ablate.execution.slots import Slot, SlotPool
from ablate.execution.worker import EXIT_CANCELLED, PARENT_PID_ENV, worker_pythonpath
from ablate.store.run_folder import LOG_FILE

if TYPE_CHECKING:
    from ablate.execution.runner_profile import RunnerProfile
    from ablate.store.results_store import ResultsStore


class LocalHandle(JobHandle):
    """A worker subprocess running one attempt in one slot."""

    def __init__(
        self, request: AttemptRequest, slot: Slot, proc: subprocess.Popen, log: IO[bytes]
    ) -> None:
        super().__init__(request, label=slot.label)
        self.slot = slot
        self._proc = proc
        self._log = log

    @property
    def pid(self) -> int:
        """The worker's process id."""
        return self._proc.pid

    @property
    def state(self) -> str:
        """``RUNNING``, then ``COMPLETED`` (exit 0), ``CANCELLED`` (stopped) or ``FAILED``."""
        returncode = self._proc.poll()
        if returncode is None:
            return RUNNING
        if returncode == 0:
            return COMPLETED
        return CANCELLED if returncode == EXIT_CANCELLED else FAILED

    def done(self) -> bool:
        """Whether the attempt has finished."""
        finished = self._proc.poll() is not None
        if finished and not self._log.closed:
            self._log.close()
        return finished

    def outcome(self) -> JobOutcome:
        """How the attempt ended."""
        returncode = self._proc.poll()
        return JobOutcome(
            returncode=returncode,
            slot=self.label,
            log_tail=read_log_tail(self.request.run_dir / LOG_FILE),
        )

    def cancel(self) -> None:
        """SIGTERM the worker: the job checkpoints and records the attempt cancelled."""
        self._signal(signal.SIGTERM, group=False)

    def kill(self) -> None:
        """SIGKILL the worker and anything it started (its whole session)."""
        self._signal(signal.SIGKILL, group=True)

    def wait(self) -> None:
        """Block until the worker has exited."""
        self._proc.wait()

    def _signal(self, sig: int, *, group: bool) -> None:
        if self._proc.poll() is not None:
            return
        try:
            if group:
                os.killpg(self._proc.pid, sig)
            else:
                self._proc.send_signal(sig)
        except ProcessLookupError:
            pass


class LocalExecutor(Executor):
    """Runs each attempt in a ``python -m ablate.execution.worker`` subprocess.

    Args:
        pool: the slots to lease (GPUs or CPU slots).
        runs_root: the runs root (passed to workers so they find the store).
        threads_per_job: ``OMP_NUM_THREADS`` for CPU slots (``None``: leave as inherited).
        env: extra environment for every worker (from the runner profile).
        python: the interpreter for workers (default: this one).
    """

    name = "local"

    def __init__(
        self,
        pool: SlotPool,
        *,
        runs_root: Path,
        threads_per_job: int | None = None,
        env: dict[str, str] | None = None,
        python: str = sys.executable,
    ) -> None:
        self.pool = pool
        self.runs_root = Path(runs_root).resolve()
        self.threads_per_job = threads_per_job
        self.env = dict(env or {})
        self.python = python
        self._handles: dict[int, LocalHandle] = {}

    @property
    def capacity(self) -> int:
        """Attempts it can run at once."""
        return self.pool.size

    def free_slots(self) -> int:
        """Attempts it can start now."""
        return self.pool.free()

    def worker_env(self, slot: Slot, request: AttemptRequest) -> dict[str, str]:
        """The environment of the worker for ``request`` in ``slot``."""
        env = dict(os.environ)
        pythonpath = worker_pythonpath(env)
        if pythonpath:
            env["PYTHONPATH"] = pythonpath
        threads = self.threads_per_job if slot.kind == "cpu" else None
        env.update(slot.env(threads))
        env.update(self.env)
        env.update(request.env)
        env[PARENT_PID_ENV] = str(os.getpid())
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _launch(self, requests: list[AttemptRequest]) -> list[JobHandle]:
        """Start one worker per request, each in a slot of its own (returns at once)."""
        return [self._start(request) for request in requests]

    def _start(self, request: AttemptRequest) -> LocalHandle:
        """Lease a slot and start the worker."""
        slot = self.pool.lease()
        try:
            request.run_dir.mkdir(parents=True, exist_ok=True)
            log = (request.run_dir / LOG_FILE).open("ab")
            header = f"\n===== attempt {request.attempt} in {slot.label} =====\n"
            log.write(header.encode())
            log.flush()
            command = [
                self.python,
                "-m",
                "ablate.execution.worker",
                str(request.run_dir.resolve()),
                "--attempt",
                str(request.attempt),
                "--runs-root",
                str(self.runs_root),
                "--executor",
                self.name,
            ]
            proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.worker_env(slot, request),
                start_new_session=True,
                pass_fds=request.hold_fds,
            )
        except BaseException:
            self.pool.release(slot)
            raise
        handle = LocalHandle(request, slot, proc, log)
        self._handles[id(handle)] = handle
        return handle

    def release(self, handle: LocalHandle) -> None:
        """Give the slot back once the worker has exited."""
        if self._handles.pop(id(handle), None) is not None:
            handle.done()
            self.pool.release(handle.slot)

    def shutdown(self) -> None:
        """Kill any worker still running (the orchestrator normally stops them first)."""
        for handle in list(self._handles.values()):
            if not handle.done():
                handle.kill()
                handle.wait()
            self.release(handle)


@register_executor("local")
def local_executor(
    profile: RunnerProfile, store: ResultsStore, *, max_parallel: int | None = None
) -> LocalExecutor:
    """The executor a ``local`` runner profile describes: one slot per GPU, else CPU slots."""
    gpus = profile.gpu_ids()
    cpu_slots = profile.resolved_cpu_slots()
    limit = max_parallel or profile.max_parallel
    if limit is not None:
        gpus = gpus[:limit]
        cpu_slots = min(cpu_slots, limit)
    pool = SlotPool.for_devices(gpus, cpu_slots)
    threads = profile.resolved_threads(pool.size) if pool.kind == "cpu" else None
    return LocalExecutor(pool, runs_root=store.root, threads_per_job=threads, env=profile.env)
