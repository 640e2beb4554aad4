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
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import ablate
from ablate.execution.base import AttemptRequest, JobOutcome
from ablate.execution.slots import Slot, SlotPool
from ablate.execution.worker import PARENT_PID_ENV
from ablate.store.run_folder import LOG_FILE, PROGRESS_FILE

LOG_TAIL_BYTES = 4000


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


class LocalHandle:
    """A worker subprocess running one attempt in one slot."""

    def __init__(
        self, request: AttemptRequest, slot: Slot, proc: subprocess.Popen, log: IO[bytes]
    ) -> None:
        self.request = request
        self.slot = slot
        self.started_at = time.time()
        self._proc = proc
        self._log = log

    @property
    def pid(self) -> int:
        """The worker's process id."""
        return self._proc.pid

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
            slot=self.slot.label,
            log_tail=read_log_tail(self.request.run_dir / LOG_FILE),
        )

    def progress_file(self) -> Path:
        """The run's ``progress.json``."""
        return self.request.run_dir / PROGRESS_FILE

    def cancel(self) -> None:
        """SIGTERM the worker: the job checkpoints and records the attempt cancelled."""
        self._signal(signal.SIGTERM, group=False)

    def kill(self) -> None:
        """SIGKILL the worker and anything it started (its whole session)."""
        self._signal(signal.SIGKILL, group=True)

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


class LocalExecutor:
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

    def bind_stop(self, stop_flag: Callable[[], bool]) -> None:
        """Workers are stopped with signals (``cancel``), not with the flag."""

    def worker_env(self, slot: Slot, request: AttemptRequest) -> dict[str, str]:
        """The environment of the worker for ``request`` in ``slot``."""
        env = dict(os.environ)
        # A source checkout (editable install, or a script run from the repo) must be importable
        # by the worker too; an installed package is already, and its site-packages must not be
        # put ahead of the standard library through PYTHONPATH.
        source_root = str(Path(ablate.__file__).resolve().parent.parent)
        paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        if Path(source_root).name not in ("site-packages", "dist-packages"):
            paths.insert(0, source_root)
        if paths:
            env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
        threads = self.threads_per_job if slot.kind == "cpu" else None
        env.update(slot.env(threads))
        env.update(self.env)
        env.update(request.env)
        env[PARENT_PID_ENV] = str(os.getpid())
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def submit(self, request: AttemptRequest) -> LocalHandle:
        """Lease a slot and start the worker (returns at once)."""
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
                handle._proc.wait()
            self.release(handle)
