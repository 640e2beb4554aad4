"""The small protocol every executor speaks (the shape of submitit's Executor / Job).

The orchestrator prepares an attempt (claims the run, writes ``spec.json``, picks the attempt
number) and hands an :class:`AttemptRequest` to an executor. The executor starts it and returns a
:class:`JobHandle` the orchestrator polls, cancels or kills. Whatever the executor, the attempt's
record is written by the code that ran the job (the worker); the orchestrator writes one only when
a worker died without doing so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class AttemptRequest:
    """One attempt of one run, ready to start.

    Attributes:
        run_id: the run's id.
        sweep: the dispatching sweep's name.
        attempt: the attempt number (1-based, global for the run id).
        run_dir: the run folder holding ``spec.json``.
        axes: the sweep values of this run (recorded beside the result).
        env: extra environment for the job (tracker ids, git state).
        hold_fds: file descriptors the job process must inherit and keep open while it lives
            (the run's claim lock, so the claim outlives an orchestrator killed mid-attempt).
    """

    run_id: str
    sweep: str
    attempt: int
    run_dir: Path
    axes: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    hold_fds: tuple[int, ...] = ()


@dataclass(frozen=True)
class JobOutcome:
    """How the process (or call) that ran an attempt ended.

    Attributes:
        returncode: the worker's exit status (negative: killed by that signal); 0 inline.
        slot: the slot it ran in (``gpu:0``, ``cpu:1``, ``inline``).
        log_tail: the end of the attempt's log, for a record the orchestrator has to write.
    """

    returncode: int | None
    slot: str
    log_tail: str = ""


@runtime_checkable
class JobHandle(Protocol):
    """A started attempt."""

    request: AttemptRequest
    started_at: float

    def done(self) -> bool:
        """Whether the attempt has finished (without blocking)."""
        ...

    def outcome(self) -> JobOutcome:
        """How it ended; call once :meth:`done` is True."""
        ...

    def progress_file(self) -> Path:
        """Where the job reports its step (``progress.json`` in the run folder)."""
        ...

    def cancel(self) -> None:
        """Ask the attempt to stop (SIGTERM: the job checkpoints and is recorded cancelled)."""
        ...

    def kill(self) -> None:
        """Stop it now (SIGKILL); the orchestrator records the attempt."""
        ...


@runtime_checkable
class Executor(Protocol):
    """Starts attempts somewhere: in this process, in local subprocesses, on SLURM later."""

    name: str

    @property
    def capacity(self) -> int:
        """How many attempts it can run at once."""
        ...

    def free_slots(self) -> int:
        """How many more attempts it can start now."""
        ...

    def bind_stop(self, stop_flag: Callable[[], bool]) -> None:
        """Give the executor the sweep's stop flag (the inline executor hands it to the job)."""
        ...

    def submit(self, request: AttemptRequest) -> JobHandle:
        """Start one attempt (blocks until it ends for the inline executor)."""
        ...

    def release(self, handle: JobHandle) -> None:
        """Give back the slot of a finished attempt."""
        ...

    def shutdown(self) -> None:
        """Release anything still held (called once, at the end of a sweep)."""
        ...
