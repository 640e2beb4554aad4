"""Run a sweep: take its lock, then run the sweep loop until every run is settled or stopped.

:func:`run_sweep` is the one call behind ``ablate sweep``:

1. take the sweep lock (a second ``ablate sweep`` on the same sweep is refused, the message names
   the holder);
2. hand a detached executor (slurm) the whole plan, or else run a
   :class:`~ablate.orchestrate.sweep_loop.SweepLoop` on the executor with graceful-stop signal
   handlers installed (Ctrl-C/SIGTERM: workers checkpoint, attempts are recorded cancelled, exit
   code 130; rerunning the same command resumes);
3. release the lock.

:class:`SweepOptions` holds the keyword options that :func:`run_sweep` and ``ablate tune``'s
``run_study`` share; :func:`plan_sweep` is the plan alone (``--dry-run``, ``ablate status``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ablate.orchestrate.lock import SweepLock
from ablate.orchestrate.plan import DEFAULT_RETRIES, Plan, make_plan
from ablate.orchestrate.progress import NullProgress, SweepProgress
from ablate.orchestrate.signals import StopSignals
from ablate.orchestrate.sweep_loop import SweepLoop
from ablate.orchestrate.tracker import NullTracker, Tracker

if TYPE_CHECKING:
    from ablate.execution.base import Executor
    from ablate.orchestrate.outcomes import SweepResult
    from ablate.spec.sweep import Sweep
    from ablate.store.results_store import ResultsStore

DEFAULT_GRACE_S = 30.0


@dataclass
class SweepOptions:
    """How a loop runs its attempts: the keyword options :func:`run_sweep` and ``run_study`` share.

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

    def stop_signals(self, executor: Executor) -> StopSignals:
        """The graceful-stop handlers for a loop on ``executor`` (a context manager)."""
        return StopSignals(
            install=self.install_signal_handlers, interrupt_on_second=executor.name == "inline"
        )


def run_sweep(
    sweep: Sweep, *, executor: Executor, store: ResultsStore, force: bool = False, **options: Any
) -> SweepResult:
    """Run a sweep to completion on ``executor``; resumable, interruptible, one record per attempt.

    Args:
        sweep: the expanded sweep (from ``ablate.spec.sweep.load_sweep``).
        executor: where attempts run (``make_executor(profile, store)``).
        store: the results store; its root is the runs root.
        force: rerun done and exhausted runs (history ignored for the budget).
        **options: the fields of :class:`SweepOptions` (``retries``, ``max_parallel``,
            ``progress``, ``tracker``, ``timeout_s``, ``grace_s``, ``poll_s``,
            ``install_signal_handlers``, ``command``).

    Returns:
        What ran; ``result.exit_code`` is 0 (all done), 1 (some not done) or 130 (interrupted).

    Raises:
        SweepLockedError: another orchestrator runs this sweep (the message names it).
        ValueError: ``retries`` is negative.
        TypeError: an option that is not a :class:`SweepOptions` field.
    """
    opts = SweepOptions(**options)
    if getattr(executor, "detached", False):
        # A detached executor (slurm) takes the whole plan and returns once it is submitted: the
        # cluster runs the attempts and the workers record them; `ablate status` reattaches.
        with SweepLock(store.layout, sweep.name, command=opts.command):
            return executor.submit_sweep(  # type: ignore[attr-defined]
                sweep,
                store=store,
                retries=opts.retries,
                force=force,
                progress=opts.progress or NullProgress(),
                tracker=opts.tracker or NullTracker(),
            )
    with (
        SweepLock(store.layout, sweep.name, command=opts.command),
        opts.stop_signals(executor) as stop,
    ):
        loop = SweepLoop(
            sweep, executor=executor, store=store, options=opts, stop=stop, force=force
        )
        return loop.run()


def plan_sweep(
    sweep: Sweep, store: ResultsStore, *, retries: int = DEFAULT_RETRIES, force: bool = False
) -> Plan:
    """The plan :func:`run_sweep` would start from (for ``--dry-run`` and ``ablate status``)."""
    return make_plan(sweep, store, retries=retries, force=force)
