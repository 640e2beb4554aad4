"""The tracker hooks: where a sweep reports to an experiment tracker (MLflow, or nothing).

The orchestrator calls these hooks and nothing else; the default :class:`NullTracker` does nothing,
so every part of a sweep works (and is tested) without a tracking server. The real one,
:class:`ablate.tracking.mlflow_tracker.MlflowTracker`, creates the parent run once in
``on_sweep_start``, pre-creates a child run per attempt in ``on_attempt_start`` and returns the
environment that tells the worker which child run to log to.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ablate.orchestrate.plan import Plan
    from ablate.spec.sweep import PlannedRun, Sweep
    from ablate.store.record import AttemptRecord


class Tracker(Protocol):
    """Observation hooks around a sweep (the results store stays the source of truth)."""

    def on_sweep_start(self, sweep: Sweep, plan: Plan) -> None:
        """Called once, after planning, before the first dispatch."""
        ...

    def on_attempt_start(self, run: PlannedRun, attempt: int) -> dict[str, str]:
        """Called before an attempt starts; returns extra environment for the job."""
        ...

    def on_attempt_end(self, run: PlannedRun, record: AttemptRecord) -> None:
        """Called once the attempt's record is in the store."""
        ...

    def on_sweep_end(self, sweep: Sweep, interrupted: bool) -> None:
        """Called once, when the sweep loop ends (also after Ctrl-C)."""
        ...


class NullTracker:
    """A tracker that records nothing (the default; tests and debugging)."""

    def on_sweep_start(self, sweep: Sweep, plan: Plan) -> None:
        """Do nothing."""

    def on_attempt_start(self, run: PlannedRun, attempt: int) -> dict[str, str]:
        """No extra environment."""
        return {}

    def on_attempt_end(self, run: PlannedRun, record: AttemptRecord) -> None:
        """Do nothing."""

    def on_sweep_end(self, sweep: Sweep, interrupted: bool) -> None:
        """Do nothing."""
