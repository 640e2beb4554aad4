"""Where a sweep loop's runs come from: the sweep's plan, or anything else through the same hooks.

:class:`~ablate.orchestrate.sweep_loop.SweepLoop` dispatches, records, retries and stops; a
:class:`RunSource` decides which runs it starts and hears how they end. :class:`SweepPlan` is
``ablate sweep``'s source (the plan against the store, nothing more); ``ablate tune``'s source
asks an Optuna study for trials as slots free up (:mod:`ablate.tune.tuner`). A source drives the
loop through its public methods only: ``start(entry)``, ``running()``, ``ask_to_stop(...)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from ablate.orchestrate.plan import make_plan

if TYPE_CHECKING:
    from ablate.orchestrate.outcomes import SweepResult
    from ablate.orchestrate.plan import Plan, PlanEntry
    from ablate.orchestrate.progress import SweepStatus
    from ablate.orchestrate.sweep_loop import SweepLoop
    from ablate.store.record import AttemptRecord


class RunSource(Protocol):
    """The hooks a sweep loop calls, in the order it calls them."""

    def begin(self, loop: SweepLoop) -> Plan:
        """The plan to start from; the loop queues its runs to dispatch."""
        ...

    def turn(self, loop: SweepLoop) -> None:
        """Once per loop turn, after ended attempts are recorded, before dispatch."""
        ...

    def wants_more(self) -> bool:
        """More runs than those queued will come (the loop goes on while True)."""
        ...

    def add_run(self, loop: SweepLoop) -> None:
        """A slot is free and :meth:`wants_more`: add a run, e.g. with ``loop.start(entry)``."""
        ...

    def run_settled(self, entry: PlanEntry, record: AttemptRecord) -> None:
        """``record`` ends ``entry`` for this loop (no retry follows, or it was done elsewhere)."""
        ...

    def on_stopped(self) -> None:
        """The workers are stopped and the executor shut down (runs even on errors)."""
        ...

    def end(self, loop: SweepLoop, result: SweepResult) -> None:
        """The loop ended normally (or returned after a detached submission): report it."""
        ...

    def status(self, status: SweepStatus) -> SweepStatus:
        """The snapshot the display shows each turn, from the loop's own (counted in runs)."""
        ...


class SweepPlan:
    """``ablate sweep``'s source: the sweep's plan against the store, shown, then finished."""

    def begin(self, loop: SweepLoop) -> Plan:
        """Plan the sweep (done runs skipped, failed ones retried within budget) and show it."""
        plan = make_plan(loop.sweep, loop.store, retries=loop.retries, force=loop.force)
        loop.progress.start(plan)
        return plan

    def turn(self, loop: SweepLoop) -> None:
        """Nothing to do between turns."""

    def wants_more(self) -> bool:
        """No: the plan is all."""
        return False

    def add_run(self, loop: SweepLoop) -> None:
        """Never called (:meth:`wants_more` is False)."""

    def run_settled(self, entry: PlanEntry, record: AttemptRecord) -> None:
        """Nothing to tell."""

    def on_stopped(self) -> None:
        """Nothing to give back."""

    def end(self, loop: SweepLoop, result: SweepResult) -> None:
        """The display's last word."""
        loop.progress.finish(result)

    def status(self, status: SweepStatus) -> SweepStatus:
        """The loop's snapshot as it is."""
        return status
