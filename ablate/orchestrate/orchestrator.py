"""Run a sweep: take its lock, then run the sweep loop until every run is settled or stopped.

:func:`run_sweep` is the one call behind ``ablate sweep``:

1. take the sweep lock (a second ``ablate sweep`` on the same sweep is refused, the message names
   the holder);
2. run a :class:`~ablate.orchestrate.sweep_loop.SweepLoop` on the executor with graceful-stop
   signal handlers installed (Ctrl-C/SIGTERM: workers checkpoint, attempts are recorded
   cancelled, exit code 130; rerunning the same command resumes), or, with ``detach=True``,
   let the loop submit every run and return (SLURM: the cluster runs them);
3. release the lock.

:class:`~ablate.orchestrate.options.SweepOptions` holds the keyword options that
:func:`run_sweep` and ``ablate tune``'s ``run_study`` share; :func:`plan_sweep` is the plan alone
(``--dry-run``, ``ablate status``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ablate.orchestrate.plan import DEFAULT_RETRIES, Plan, make_plan

if TYPE_CHECKING:
    from ablate.execution.base import Executor
    from ablate.orchestrate.outcomes import SweepResult
    from ablate.spec.sweep import Sweep
    from ablate.store.results_store import ResultsStore


def run_sweep(
    sweep: Sweep, *, executor: Executor, store: ResultsStore, force: bool = False, **options: Any
) -> SweepResult:
    """Run a sweep to completion on ``executor``; resumable, interruptible, one record per attempt.

    Args:
        sweep: the expanded sweep (from ``ablate.spec.sweep.load_sweep``).
        executor: where attempts run (``make_executor(profile, store)``).
        store: the results store; its root is the runs root.
        force: rerun done and exhausted runs (history ignored for the budget).
        **options: the fields of :class:`~ablate.orchestrate.options.SweepOptions`
            (``retries``, ``max_parallel``, ``progress``, ``tracker``, ``timeout_s``,
            ``grace_s``, ``poll_s``, ``install_signal_handlers``, ``command``, ``detach``).

    Returns:
        What ran; ``result.exit_code`` is 0 (all done, or detached: all submitted), 1 (some not
        done) or 130 (interrupted).

    Raises:
        SweepLockedError: another orchestrator runs this sweep (the message names it).
        ValueError: ``retries`` is negative, or ``detach`` on an executor whose jobs end with
            this process.
        TypeError: an option that is not a :class:`~ablate.orchestrate.options.SweepOptions`
            field.
    """
    # here, not at the top: planning alone (--dry-run, status) never imports the loop
    from ablate.orchestrate.lock import SweepLock
    from ablate.orchestrate.options import SweepOptions
    from ablate.orchestrate.sweep_loop import SweepLoop

    opts = SweepOptions(**options)
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
