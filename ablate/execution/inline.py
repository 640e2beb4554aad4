"""The ``inline`` executor: run each attempt in the orchestrator's own process (debugging).

No subprocess, no slots: breakpoints and profilers work, and a traceback is one ``pdb`` away. It
writes the same records as the worker (both call :func:`~ablate.execution.attempt.run_attempt`),
and its handles are done by the time ``submit`` returns. Ctrl-C reaches the job through the
sweep's stop flag; the job checkpoints and is recorded cancelled. The runner's ``timeout_s``
works the same way (the job is asked to stop once the time is up and recorded failed: timeout),
so it needs a job that looks at its stop flag, as every built-in job does between steps; nothing
inline can kill a job that never looks.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from ablate.execution.attempt import run_attempt
from ablate.execution.base import (
    CANCELLED,
    COMPLETED,
    FAILED,
    AttemptRequest,
    Executor,
    JobHandle,
    JobOutcome,
)
from ablate.execution.registry import register_executor
from ablate.store.files import write_atomic
from ablate.store.record import AttemptStatus
from ablate.store.results_store import ResultsStore
from ablate.store.run_folder import STOP_REASON_FILE

if TYPE_CHECKING:
    from ablate.execution.runner_profile import RunnerProfile

_STATES = {
    AttemptStatus.SUCCESS: COMPLETED,
    AttemptStatus.FAILED: FAILED,
    AttemptStatus.CANCELLED: CANCELLED,
}


class InlineHandle(JobHandle):
    """A finished in-process attempt (``submit`` returned only after it ended)."""

    def __init__(self, request: AttemptRequest, started_at: float, status: AttemptStatus) -> None:
        super().__init__(request, label="inline")
        self.started_at = started_at
        self._status = status

    @property
    def state(self) -> str:
        """``COMPLETED``, ``FAILED`` or ``CANCELLED``, from the attempt's record."""
        return _STATES[self._status]

    def done(self) -> bool:
        """Always: the attempt ended before ``submit`` returned."""
        return True

    def outcome(self) -> JobOutcome:
        """How the attempt ended (returncode 0 for a success, else 1)."""
        return JobOutcome(
            returncode=0 if self._status is AttemptStatus.SUCCESS else 1, slot=self.label
        )

    def cancel(self) -> None:
        """Nothing to stop: the attempt already ended."""

    def kill(self) -> None:
        """Nothing to stop: the attempt already ended."""


class InlineExecutor(Executor):
    """Runs attempts one at a time inside this process.

    Args:
        store: where records are written.
        device: ``cpu``/``cuda``; resolved from the environment when ``None``.
        timeout_s: ask an attempt to stop after this many seconds (recorded failed: timeout).
    """

    name = "inline"
    in_process = True

    def __init__(
        self, store: ResultsStore, *, device: str | None = None, timeout_s: float | None = None
    ) -> None:
        self.store = store
        self.device = device
        self.timeout_s = timeout_s
        self._stop_flag: Callable[[], bool] = lambda: False

    @property
    def capacity(self) -> int:
        """Attempts it can run at once."""
        return 1

    def bind_stop(self, stop_flag: Callable[[], bool]) -> None:
        """Keep the sweep's stop flag for the jobs it runs."""
        self._stop_flag = stop_flag

    def _launch(self, requests: list[AttemptRequest]) -> list[JobHandle]:
        """Run the attempts now, one after the other; returns once each has its record."""
        return [self._run(request) for request in requests]

    def _run(self, request: AttemptRequest) -> InlineHandle:
        started = time.time()
        with job_environment(request.env):
            record = run_attempt(
                request.run_dir,
                request.attempt,
                store=self.store,
                executor=self.name,
                stop_flag=self._stop_flag_for(request.run_dir),
                device=self.device,
            )
        return InlineHandle(request, started, record.status)

    def _stop_flag_for(self, run_dir: Path) -> Callable[[], bool]:
        """The sweep's stop flag, also raised once the attempt runs past ``timeout_s``."""
        if self.timeout_s is None:
            return self._stop_flag
        deadline = time.monotonic() + self.timeout_s

        def stop() -> bool:
            if self._stop_flag():
                return True
            if time.monotonic() < deadline:
                return False
            if not (run_dir / STOP_REASON_FILE).exists():
                write_atomic(run_dir / STOP_REASON_FILE, "timeout")  # read when recording
            return True

        return stop


@register_executor("inline")
def inline_executor(
    profile: RunnerProfile, store: ResultsStore, *, max_parallel: int | None = None
) -> InlineExecutor:
    """The executor an ``inline`` runner profile describes (one attempt at a time)."""
    return InlineExecutor(store, timeout_s=profile.timeout_s)


@contextmanager
def job_environment(extra: dict[str, str]) -> Iterator[None]:
    """Apply ``extra`` to ``os.environ`` for the duration of an inline attempt."""
    saved = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
