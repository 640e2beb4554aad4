"""The options of a sweep loop, shared by ``ablate sweep`` (``run_sweep``) and ``ablate tune``.

They live apart from the loop and from :mod:`~ablate.orchestrate.orchestrator` so that both the
loop and its callers read them without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ablate.orchestrate.plan import DEFAULT_RETRIES
from ablate.orchestrate.signals import StopSignals

if TYPE_CHECKING:
    from ablate.execution.base import Executor
    from ablate.orchestrate.progress import SweepProgress
    from ablate.orchestrate.tracker import Tracker

DEFAULT_GRACE_S = 30.0


@dataclass
class SweepOptions:
    """How a loop runs its attempts: the keyword options ``run_sweep`` and ``run_study`` share.

    Attributes:
        retries: failed attempts allowed beyond the first, counted over the run's whole history.
        max_parallel: at most this many attempts at once (default: the executor's capacity).
        progress: the display (default: none).
        tracker: experiment-tracker hooks (default: :class:`NullTracker`).
        timeout_s: stop an attempt after this many seconds; it is recorded failed (timeout).
        grace_s: seconds a stopped job gets to checkpoint before SIGKILL.
        poll_s: how often running attempts are polled.
        install_signal_handlers: turn SIGINT/SIGTERM into a graceful stop (main thread only).
        command: the command line written into the sweep lock (default ``sys.argv``).
        detach: submit every run to dispatch and return without waiting (needs an executor
            whose jobs outlive this process: ``slurm``); the jobs record themselves.
    """

    retries: int = DEFAULT_RETRIES
    max_parallel: int | None = None
    progress: SweepProgress | None = None
    tracker: Tracker | None = None
    timeout_s: float | None = None
    grace_s: float = DEFAULT_GRACE_S
    poll_s: float = 0.1
    install_signal_handlers: bool = True
    command: str | None = None
    detach: bool = False

    def stop_signals(self, executor: Executor) -> StopSignals:
        """The graceful-stop handlers for a loop on ``executor`` (a context manager)."""
        return StopSignals(
            install=self.install_signal_handlers, interrupt_on_second=executor.in_process
        )
