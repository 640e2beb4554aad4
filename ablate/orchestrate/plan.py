"""The plan: what state every run of a sweep is in, and which ones a sweep will dispatch.

States, from the results store and the claims:

- ``new``: no attempt recorded (or only cancelled ones: cancelling never uses up the budget);
- ``done``: an attempt succeeded, in this sweep or any other (run ids are global);
- ``failed``: attempts failed, retries left (``--retries N`` allows N+1 failed attempts), or the
  last attempts failed for a config error (the spec's fault: data or weights not there), which
  never counts against the budget, so a rerun after the fix runs it;
- ``exhausted``: the failed-attempt budget is spent (raise ``--retries`` or use ``--force``);
- ``running``: another process holds the run's claim right now.

``--force`` dispatches every run that is not running, ignoring its history (its failures are
counted from zero again).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, NamedTuple

from ablate.execution.claims import held_claims
from ablate.store.record import CONFIG_FAILURES, AttemptStatus
from ablate.store.results_store import ResultsStore

if TYPE_CHECKING:
    from ablate.spec.sweep import PlannedRun, Sweep

DEFAULT_RETRIES = 1
_STATUS = {s.value: s for s in AttemptStatus}


class RunState(str, Enum):
    """Where a run stands before a sweep dispatches anything."""

    NEW = "new"
    DONE = "done"
    FAILED = "failed"
    EXHAUSTED = "exhausted"
    RUNNING = "running"


#: ``state.value`` without the enum property's cost (a plan reads it twice per run).
_STATE_TEXT = {state: state.value for state in RunState}


class RunHistory(NamedTuple):
    """What the store says about one run id (a tuple: planning builds 10,000s of them)."""

    attempts: int = 0
    failures: int = 0
    cancelled: int = 0
    succeeded_in: str | None = None
    last_status: AttemptStatus | None = None
    last_attempt: int = 0
    config_failures: int = 0  # failed for a config error: not counted in ``failures``


class PlanEntry(NamedTuple):
    """One run of the sweep, its state and whether this sweep will dispatch it (immutable).

    Attributes:
        run: the planned run (spec and axes).
        state: see :class:`RunState`.
        history: counts from the store.
        dispatch: whether the sweep will start an attempt of it.
        holder: who runs it now (``running`` only): pid, host, sweep.
    """

    run: PlannedRun
    state: RunState
    history: RunHistory
    dispatch: bool
    holder: dict[str, Any] | None = None

    @property
    def run_id(self) -> str:
        """The run's id."""
        return self.run.spec.run_id


@dataclass(frozen=True)
class Plan:
    """The states of all runs of a sweep and the dispatch list."""

    sweep: Sweep
    entries: tuple[PlanEntry, ...]
    retries: int
    force: bool
    counts: dict[str, int] = field(default_factory=dict)

    def to_dispatch(self) -> list[PlanEntry]:
        """Entries the sweep will start, in sweep order."""
        return [e for e in self.entries if e.dispatch]

    def rows(self) -> list[dict[str, Any]]:
        """One plain row per run (run_id, state, attempts, failures, axes) for tables."""
        return [
            {
                "run_id": e.run_id,
                "state": _STATE_TEXT[e.state],
                "dispatch": e.dispatch,
                "attempts": e.history.attempts,
                "failures": e.history.failures,
                "label": getattr(e.run, "label", None),
                **e.run.axes,
            }
            for e in self.entries
        ]


def summarise(columns: dict[str, list[Any]]) -> dict[str, RunHistory]:
    """Per run id: attempts, failures, cancellations, where it succeeded, last status.

    Args:
        columns: ``run_id``, ``attempt``, ``status``, ``sweep`` lists, one item per record
            (:meth:`ResultsStore.attempt_columns`), and optionally ``failure_kind``: failures of a
            config kind (:data:`~ablate.store.record.CONFIG_FAILURES`) are counted apart, outside
            the retry budget.
    """
    acc: dict[str, list[Any]] = {}
    success, failed, cancelled = "success", "failed", "cancelled"
    config_kinds = {k.value for k in CONFIG_FAILURES}
    kinds = columns.get("failure_kind") or [None] * len(columns["run_id"])
    for run_id, attempt, status, sweep, kind in zip(
        columns["run_id"],
        columns["attempt"],
        columns["status"],
        columns["sweep"],
        kinds,
        strict=True,
    ):
        item = acc.get(run_id)
        if item is None:  # attempts, failures, cancelled, succeeded_in, last, status, config
            item = acc[run_id] = [0, 0, 0, None, 0, None, 0]
        item[0] += 1
        if status == failed and kind in config_kinds:
            item[6] += 1
        elif status == failed:
            item[1] += 1
        elif status == cancelled:
            item[2] += 1
        elif status == success and item[3] is None:
            item[3] = sweep or "?"
        if attempt > item[4]:
            item[4], item[5] = attempt, status
    return {
        run_id: RunHistory(
            attempts=a,
            failures=f,
            cancelled=c,
            succeeded_in=s,
            last_status=AttemptStatus(st) if st else None,
            last_attempt=la,
            config_failures=cf,
        )
        for run_id, (a, f, c, s, la, st, cf) in acc.items()
    }


def state_of(history: RunHistory, retries: int, running: bool) -> RunState:
    """The state of a run from its history, the retry budget and whether it is claimed."""
    if running:
        return RunState.RUNNING
    if history.succeeded_in is not None:
        return RunState.DONE
    if history.failures > retries:
        return RunState.EXHAUSTED
    if history.failures or history.config_failures:
        return RunState.FAILED
    return RunState.NEW


def exhausted_hint(plan: Plan) -> str | None:
    """What reruns a plan's exhausted runs (``None`` when it has none): the flags, spelled out.

    ``--retries N`` allows N+1 failed attempts, so the run with most failures, F, needs
    ``--retries F`` for one more attempt.
    """
    failures = [e.history.failures for e in plan.entries if e.state is RunState.EXHAUSTED]
    if not failures:
        return None
    more = max(failures)
    return (
        f"{len(failures)} run(s) exhausted their retry budget (--retries {plan.retries} allows "
        f"{plan.retries + 1} failed attempt(s)); rerun them with --retries {more} (one more "
        "attempt each) or --force (their failures counted from zero)"
    )


def make_plan(
    sweep: Sweep,
    store: ResultsStore,
    *,
    retries: int = DEFAULT_RETRIES,
    force: bool = False,
    check_claims: bool = True,
) -> Plan:
    """Plan a sweep against the store: each run's state and whether to dispatch it.

    Args:
        sweep: the expanded sweep.
        store: the results store (its index is refreshed with any new records).
        retries: failed attempts allowed beyond the first (``--retries``).
        force: dispatch done and exhausted runs again.
        check_claims: look for runs held by other processes (off for a pure store view).

    Raises:
        ValueError: ``retries`` is negative.
    """
    if retries < 0:
        raise ValueError(f"--retries must be >= 0, got {retries}")
    histories = summarise(store.attempt_columns())
    held = held_claims(store.layout) if check_claims else {}
    empty = RunHistory()
    entries = []
    counts = {s.value: 0 for s in RunState}
    for run in sweep.runs:
        run_id = run.spec.run_id
        history = histories.get(run_id, empty)
        state = state_of(history, retries, run_id in held)
        if state is RunState.RUNNING:
            dispatch = False
        elif force:
            dispatch = True
        else:
            dispatch = state in (RunState.NEW, RunState.FAILED)
        counts[_STATE_TEXT[state]] += 1
        entries.append(PlanEntry(run, state, history, dispatch, held.get(run_id)))
    return Plan(sweep=sweep, entries=tuple(entries), retries=retries, force=force, counts=counts)
