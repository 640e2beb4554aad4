"""The executor interface, in the shape of submitit's ``Executor`` / ``Job`` (``core/core.py``).

The sweep loop prepares an attempt (claims the run, writes ``spec.json``, picks the attempt
number) and hands an :class:`AttemptRequest` to an :class:`Executor`. ``submit`` and
``submit_many`` are written once, here; a backend implements only :meth:`Executor._launch` (how
its requests start) and returns one :class:`JobHandle` per request, which the loop polls
(``state``, ``done``), cancels or kills. Whatever the backend, the attempt's record is written by
the code that ran the job (the worker); the loop writes one only when a worker died without doing
so.

Whether anyone waits for a job is the caller's business, not the executor's: a caller that returns
once it has submitted (``ablate sweep --runner slurm``) marks its requests ``detached``, and only a
backend whose jobs outlive the caller (:attr:`Executor.detachable`) accepts them.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ablate.store.run_folder import PROGRESS_FILE

if TYPE_CHECKING:
    from ablate.store.results_store import ResultsStore

# SLURM's words for the states of a job; the in-process and local backends speak them too.
PENDING = "PENDING"
RUNNING = "RUNNING"
COMPLETED = "COMPLETED"
FAILED = "FAILED"
CANCELLED = "CANCELLED"


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
        detached: no caller waits for this attempt: the job claims its run, reports to the
            tracker and is requeued on its own (only a :attr:`Executor.detachable` backend
            accepts it).
    """

    run_id: str
    sweep: str
    attempt: int
    run_dir: Path
    axes: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    hold_fds: tuple[int, ...] = ()
    detached: bool = False


@dataclass(frozen=True)
class JobOutcome:
    """How the process (or call) that ran an attempt ended.

    Attributes:
        returncode: the worker's exit status (negative: killed by that signal); 0 inline.
        slot: where it ran (``gpu:0``, ``cpu:1``, ``inline``, ``slurm:123_4``).
        log_tail: the end of the attempt's log, for a record the orchestrator has to write.
    """

    returncode: int | None
    slot: str
    log_tail: str = ""


class JobHandle(abc.ABC):
    """A submitted attempt (submitit's ``Job``): its state, its end, and how to stop it.

    Args:
        request: the attempt it runs.
        label: where it runs, as the progress display and a lost attempt's record show it
            (``gpu:0``, ``cpu:1``, ``inline``, ``slurm:123_4``).
    """

    def __init__(self, request: AttemptRequest, label: str) -> None:
        self.request = request
        self.label = label
        self.started_at = time.time()

    @property
    @abc.abstractmethod
    def state(self) -> str:
        """The job's state in SLURM's words (``PENDING``, ``RUNNING``, ``COMPLETED``, ...)."""

    @abc.abstractmethod
    def done(self) -> bool:
        """Whether the attempt has finished (without blocking)."""

    @abc.abstractmethod
    def outcome(self) -> JobOutcome:
        """How it ended; call once :meth:`done` is True."""

    @abc.abstractmethod
    def cancel(self) -> None:
        """Ask the attempt to stop (SIGTERM: the job checkpoints and is recorded cancelled)."""

    @abc.abstractmethod
    def kill(self) -> None:
        """Stop it now (SIGKILL); the orchestrator records the attempt."""

    def progress_file(self) -> Path:
        """Where the job reports its step (``progress.json`` in the run folder)."""
        return self.request.run_dir / PROGRESS_FILE

    @property
    def batch(self) -> str:
        """The submission it was part of, as people name it (default: its label)."""
        return self.label


class Executor(abc.ABC):
    """Starts attempts somewhere: in this process, in local subprocesses, as SLURM jobs.

    Class attributes:
        name: the name runner profiles use (``executor: local``) and records keep.
        detachable: its jobs run on after the caller exits, so a caller may submit and return.
        in_process: jobs run inside the caller (a second Ctrl-C must interrupt the job).
    """

    name: ClassVar[str]
    detachable: ClassVar[bool] = False
    in_process: ClassVar[bool] = False

    @property
    @abc.abstractmethod
    def capacity(self) -> int:
        """How many attempts it can run at once."""

    def free_slots(self) -> int:
        """How many more attempts it can start now (default: its whole capacity)."""
        return self.capacity

    def check_ready(self) -> None:  # noqa: B027 - optional hook
        """Raise an :class:`~ablate.errors.AblateError` when it cannot take work (default: can)."""

    def queued_runs(self, store: ResultsStore, sweep: str) -> dict[str, str]:
        """Runs of ``sweep`` an earlier detached submission still has queued or running.

        Returns:
            run id -> what holds it (``SLURM job 77_1 is pending``); default: none.
        """
        return {}

    def bind_stop(self, stop_flag: Callable[[], bool]) -> None:  # noqa: B027 - optional hook
        """Give the executor the sweep's stop flag (default: stops reach jobs by ``cancel``)."""

    def submit(self, request: AttemptRequest) -> JobHandle:
        """Start one attempt (blocks until it ends for the in-process executor)."""
        return self.submit_many([request])[0]

    def submit_many(self, requests: Sequence[AttemptRequest]) -> list[JobHandle]:
        """Start several attempts at once (SLURM: as job arrays); one handle per request.

        Raises:
            ValueError: a detached request to an executor whose jobs end with the caller.
        """
        requests = list(requests)
        if not requests:
            return []
        if not self.detachable and any(r.detached for r in requests):
            raise ValueError(
                f"the {self.name} executor's jobs end with the caller: it cannot run them detached"
            )
        return self._launch(requests)

    @abc.abstractmethod
    def _launch(self, requests: list[AttemptRequest]) -> list[JobHandle]:
        """Backends: start ``requests`` (never empty), one handle per request, in order."""

    def release(self, handle: JobHandle) -> None:  # noqa: B027 - optional hook
        """Give back what a finished attempt held (default: nothing is held)."""

    def shutdown(self) -> None:  # noqa: B027 - optional hook
        """Release anything still held (called once, at the end of a sweep; default: nothing)."""
