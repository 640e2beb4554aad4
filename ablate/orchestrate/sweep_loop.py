"""The sweep loop: dispatch attempts, record them, retry, time out, stop cleanly.

:class:`SweepLoop` is what :func:`~ablate.orchestrate.orchestrator.run_sweep` runs once it holds
the sweep lock:

1. plan against the results store (done runs are skipped, failed ones retried within budget);
2. for each run to dispatch: claim it, write ``runs/<sweep>/<run_id>/spec.json``, start an attempt;
3. when an attempt ends, make sure it has exactly one record (a worker that died without writing
   one gets a failed record with its exit signal and log tail), release the claim, and retry a
   failure while the budget lasts;
4. on SIGINT/SIGTERM: dispatch nothing more, SIGTERM the workers, wait a grace period, SIGKILL
   stragglers, record every interrupted attempt cancelled; exit code 130. Rerunning the same
   command resumes.

Runs another process holds (same run id in another sweep, or workers of a killed orchestrator
still checkpointing) are waited for, then re-planned: usually they are done by then.

``ablate tune`` (:mod:`ablate.tune.tuner`) subclasses the loop through its hooks to draw runs from
an Optuna study instead of a plan.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ablate.execution.base import AttemptRequest, Executor, JobHandle
from ablate.orchestrate.claims import RunClaim, claim_holder, try_claim
from ablate.orchestrate.outcomes import SweepResult, lost_attempt_record
from ablate.orchestrate.plan import Plan, PlanEntry, RunState, make_plan
from ablate.orchestrate.progress import NullProgress, RunningView, SweepStatus
from ablate.orchestrate.tracker import NullTracker
from ablate.store.files import write_atomic
from ablate.store.provenance import git_env
from ablate.store.record import AttemptRecord, AttemptStatus, FailureKind
from ablate.store.run_folder import STOP_REASON_FILE, write_run_files

if TYPE_CHECKING:
    from ablate.orchestrate.orchestrator import SweepOptions
    from ablate.orchestrate.signals import StopSignals
    from ablate.spec.sweep import Sweep
    from ablate.store.results_store import ResultsStore

DEFERRED_RECHECK_S = 1.0


@dataclass
class ActiveAttempt:
    """An attempt the loop has started and not yet recorded."""

    entry: PlanEntry
    handle: JobHandle
    claim: RunClaim
    attempt: int
    deadline: float | None
    stop_kind: FailureKind | None = None  # why the orchestrator stopped it, if it did
    stop_sent_at: float | None = None


def _held_message(run_id: str, holder: dict[str, object]) -> str:
    return (
        f"{run_id} is held by pid {holder.get('pid', '?')} on {holder.get('host', '?')} "
        f"(sweep {holder.get('sweep', '?')}); waiting for it"
    )


class SweepLoop:
    """One run of the dispatch loop: start attempts, record them, retry, time out, stop cleanly.

    :func:`~ablate.orchestrate.orchestrator.run_sweep` builds one per call; :meth:`run` returns
    the :class:`~ablate.orchestrate.outcomes.SweepResult`. Runs come
    from the plan by default; a subclass changes where they come from by overriding the hooks
    below (each default is the sweep's behaviour), starting runs with :meth:`start` and stopping
    one with :meth:`ask_to_stop`. Its state is public to such subclasses: ``pending`` (entries to
    start), ``deferred`` (run id -> entry held by another process), ``active``
    (:class:`ActiveAttempt`), ``failures`` (run id -> failed attempts), ``finished`` and
    ``given_up`` (run ids), ``result``.

    Hooks:
        begin: the plan to start from, its runs queued.
        turn: once per loop turn, after ended attempts are recorded, before dispatch.
        wants_more / add_run: runs beyond the queue (the loop goes on while ``wants_more``).
        run_settled: a run has its final record of this loop.
        on_stopped / end: cleanup that always runs / the report after a normal end.
        status: the snapshot shown by the display.

    Args:
        sweep: the expanded sweep.
        executor: where attempts run.
        store: the results store.
        options: the shared loop options.
        stop: the stop request (``options.stop_signals(executor)``, entered).
        force: rerun done and exhausted runs (history ignored for the budget).
    """

    def __init__(
        self,
        sweep: Sweep,
        *,
        executor: Executor,
        store: ResultsStore,
        options: SweepOptions,
        stop: StopSignals,
        force: bool = False,
    ) -> None:
        self.sweep = sweep
        self.executor = executor
        self.store = store
        self.layout = store.layout
        self.retries = options.retries
        cap = executor.capacity
        self.limit = max(1, min(options.max_parallel or cap, cap))
        self.force = force
        self.progress = options.progress or NullProgress()
        self.tracker = options.tracker or NullTracker()
        self.timeout_s = options.timeout_s
        self.grace_s = options.grace_s
        self.poll_s = options.poll_s
        self.idle_wait_s = DEFERRED_RECHECK_S / 4  # wait per turn with nothing running
        self.stop = stop
        self.pending: deque[PlanEntry] = deque()
        self.deferred: dict[str, PlanEntry] = {}
        self.active: list[ActiveAttempt] = []
        self.failures: dict[str, int] = {}
        self.finished: set[str] = set()
        self.given_up: set[str] = set()
        self.durations: list[float] = []
        self.started_at = time.time()
        self.env = git_env()
        self.result: SweepResult | None = None

    # ------------------------------------------------------------------------------- main
    def run(self) -> SweepResult:
        """Run until every run is settled or a stop is requested; the result of this call."""
        plan = self.begin()
        self.result = SweepResult(sweep=self.sweep.name, plan=plan)
        self.tracker.on_sweep_start(self.sweep, plan)
        self.executor.bind_stop(self.stop)
        try:
            try:
                self._loop()
            except KeyboardInterrupt:  # a second Ctrl-C outside an inline job: stop now
                self.stop.request("KeyboardInterrupt")
        finally:
            if self.active:
                self._stop_all()
            self.executor.shutdown()
            self.on_stopped()
            self.tracker.on_sweep_end(self.sweep, self.stop.requested)
        for notice in self.stop.notices():
            self.progress.message(notice)
        self.result.interrupted = self.stop.requested
        self.end()
        return self.result

    def _loop(self) -> None:
        last_recheck = 0.0
        while not self.stop.requested:
            for active in [a for a in self.active if a.handle.done()]:
                self._finalize(active)
            self.turn()
            self._enforce_timeouts()
            while self.pending and self._free() and not self.stop.requested:
                self.start(self.pending.popleft())
            if self.deferred and time.monotonic() - last_recheck > DEFERRED_RECHECK_S:
                last_recheck = time.monotonic()
                self._recheck_deferred()
            while self._free() and not self.stop.requested and self.wants_more():
                self.add_run()
            self._tick()
            if not (self.pending or self.active or self.deferred or self.wants_more()):
                return
            self.stop.wait(self.poll_s if self.active else self.idle_wait_s)

    def _free(self) -> bool:
        return len(self.active) < self.limit and self.executor.free_slots() > 0

    # ------------------------------------------------------------------------------ hooks
    def begin(self) -> Plan:
        """Hook: the plan this loop starts from, with its runs queued (default: the sweep's)."""
        plan = make_plan(self.sweep, self.store, retries=self.retries, force=self.force)
        for entry in plan.entries:
            self.failures[entry.run_id] = 0 if self.force else entry.history.failures
            if entry.state is RunState.RUNNING:
                self.deferred[entry.run_id] = entry
            elif entry.dispatch:
                self.pending.append(entry)
            elif entry.state is RunState.DONE:
                self.finished.add(entry.run_id)
            else:
                self.given_up.add(entry.run_id)
        self.progress.start(plan)
        for run_id, entry in self.deferred.items():
            self.progress.message(_held_message(run_id, entry.holder or {}))
        return plan

    def turn(self) -> None:
        """Hook: once per loop turn, after ended attempts are recorded (default: nothing)."""

    def wants_more(self) -> bool:
        """Hook: more runs than those queued will come (default: no, the plan is all)."""
        return False

    def add_run(self) -> None:
        """Hook: a slot is free and :meth:`wants_more`: add a run, e.g. with :meth:`start`."""

    def run_settled(self, entry: PlanEntry, record: AttemptRecord) -> None:
        """Hook: ``record`` ends ``entry`` for this loop (no retry follows, or done elsewhere)."""

    def on_stopped(self) -> None:
        """Hook: the workers are stopped and the executor shut down (runs even on errors)."""

    def end(self) -> None:
        """Hook: the loop ended normally; report it (default: not-done runs, display finish)."""
        assert self.result is not None
        plan = self.result.plan
        self.result.not_done = [e.run_id for e in plan.entries if e.run_id not in self.finished]
        self.progress.finish(self.result)

    # ------------------------------------------------------------------------------ start
    def start(self, entry: PlanEntry) -> None:
        """Claim ``entry``'s run and start its next attempt (deferred if another holds it)."""
        run_id = entry.run_id
        claim = try_claim(self.layout, run_id, sweep=self.sweep.name)
        if claim is None:
            self.progress.message(_held_message(run_id, claim_holder(self.layout, run_id) or {}))
            self.deferred[run_id] = entry
            return
        try:
            attempts = self.store.attempts_of(run_id)
            done = [r for r in attempts if r.status is AttemptStatus.SUCCESS]
            if not self.force and done:
                claim.release()  # finished elsewhere since we planned
                self.finished.add(run_id)
                self.run_settled(entry, done[-1])
                return
            attempt = self.store.next_attempt(run_id)
            run_dir = self.layout.run_dir(self.sweep.name, run_id)
            write_run_files(
                run_dir, entry.run.spec.to_json(), sweep=self.sweep.name, axes=entry.run.axes
            )
            (run_dir / STOP_REASON_FILE).unlink(missing_ok=True)
            claim.note(sweep=self.sweep.name, attempt=attempt, since=time.time())
            env = {**self.env, **(self.tracker.on_attempt_start(entry.run, attempt) or {})}
            request = AttemptRequest(
                run_id=run_id,
                sweep=self.sweep.name,
                attempt=attempt,
                run_dir=run_dir,
                axes=dict(entry.run.axes),
                env=env,
                hold_fds=(claim.fd,),
            )
            deadline = time.monotonic() + self.timeout_s if self.timeout_s else None
            handle = self.executor.submit(request)
        except BaseException:
            claim.release()
            raise
        active = ActiveAttempt(entry, handle, claim, attempt, deadline)
        self.active.append(active)
        self.progress.attempt_started(
            entry, attempt, getattr(getattr(handle, "slot", None), "label", "inline")
        )
        if handle.done():  # inline: already finished
            self._finalize(active)

    # --------------------------------------------------------------------------- finalize
    def _finalize(self, active: ActiveAttempt) -> None:
        self.active.remove(active)
        outcome = active.handle.outcome()
        self.executor.release(active.handle)
        run_id = active.entry.run_id
        try:
            record = self._record_of(run_id, active.attempt)
            if record is None:
                record = self._write_missing_record(active, outcome.returncode, outcome.log_tail)
        finally:
            active.claim.release()
        assert self.result is not None
        self.result.records.append(record)
        if record.duration_s is not None and record.status is AttemptStatus.SUCCESS:
            self.durations.append(record.duration_s)
        self.tracker.on_attempt_end(active.entry.run, record)
        retry = False
        if record.status is AttemptStatus.SUCCESS:
            self.finished.add(run_id)
        elif record.status is AttemptStatus.FAILED:
            self.failures[run_id] = self.failures.get(run_id, 0) + 1
            retry = self.failures[run_id] <= self.retries and not self.stop.requested
            if retry:
                self.pending.append(active.entry)
            else:
                self.given_up.add(run_id)
        self.progress.attempt_finished(active.entry, record, retry)
        if not retry:
            self.run_settled(active.entry, record)

    def _record_of(self, run_id: str, attempt: int) -> AttemptRecord | None:
        matches = [r for r in self.store.attempts_of(run_id) if r.attempt == attempt]
        return matches[-1] if matches else None

    def _write_missing_record(
        self, active: ActiveAttempt, returncode: int | None, log_tail: str
    ) -> AttemptRecord:
        """The worker died without a record: write one so the attempt is never lost."""
        record = lost_attempt_record(
            active.entry.run,
            sweep=self.sweep.name,
            attempt=active.attempt,
            stopped_for=active.stop_kind,
            returncode=returncode,
            log_tail=log_tail,
            started_at=active.handle.started_at,
            run_dir=active.handle.request.run_dir,
            slot=getattr(getattr(active.handle, "slot", None), "label", None),
            executor=self.executor.name,
            signal_name=self.stop.signal_name,
            timeout_s=self.timeout_s,
        )
        self.store.write(record)
        return record

    # ---------------------------------------------------------------------------- stopping
    def _enforce_timeouts(self) -> None:
        now = time.monotonic()
        for active in self.active:
            if active.deadline is None or now < active.deadline:
                continue
            if active.stop_kind is None:
                self.progress.message(
                    f"{active.entry.run_id} attempt {active.attempt} ran past "
                    f"{self.timeout_s:g}s: stopping it"
                )
                self.ask_to_stop(active, FailureKind.TIMEOUT)
            elif active.stop_sent_at is not None and now - active.stop_sent_at > self.grace_s:
                active.handle.kill()

    def ask_to_stop(self, active: ActiveAttempt, kind: FailureKind) -> None:
        """Stop a running attempt (SIGTERM, SIGKILL after the grace period); ``kind``: why."""
        active.stop_kind = kind
        active.stop_sent_at = time.monotonic()
        if kind is FailureKind.TIMEOUT:
            write_atomic(active.handle.request.run_dir / STOP_REASON_FILE, "timeout\n")
        active.handle.cancel()

    def _stop_all(self) -> None:
        """SIGTERM every running attempt, wait the grace period, SIGKILL the rest, record all."""
        for active in self.active:
            if active.stop_kind is None:
                self.ask_to_stop(active, FailureKind.CANCELLED)
        for notice in self.stop.notices():
            self.progress.message(notice)
        if self.active:
            self.progress.message(
                f"waiting up to {self.grace_s:g}s for {len(self.active)} running job(s) to stop"
            )
        deadline = time.monotonic() + self.grace_s
        while self.active and time.monotonic() < deadline and not self.stop.hurry:
            for active in [a for a in self.active if a.handle.done()]:
                self._finalize(active)
            self._tick()
            time.sleep(0.05)
        for active in list(self.active):
            if not active.handle.done():
                active.handle.kill()
            while not active.handle.done():
                time.sleep(0.01)
            self._finalize(active)

    def _recheck_deferred(self) -> None:
        for run_id, entry in list(self.deferred.items()):
            if claim_holder(self.layout, run_id) is None:
                del self.deferred[run_id]
                self.pending.appendleft(entry)

    # ----------------------------------------------------------------------------- status
    def _tick(self) -> None:
        for notice in self.stop.notices():
            self.progress.message(notice)
        self.progress.tick(self.status())

    def status(self) -> SweepStatus:
        """Hook: the snapshot the display shows each turn (default: counted in plan runs)."""
        assert self.result is not None
        running = [
            RunningView(
                run_id=a.entry.run_id,
                attempt=a.attempt,
                axes=dict(a.entry.run.axes),
                label=getattr(a.entry.run, "label", None),
                slot=getattr(getattr(a.handle, "slot", None), "label", "inline"),
                started_at=a.handle.started_at,
                progress_file=a.handle.progress_file(),
            )
            for a in self.active
        ]
        total = len(self.result.plan.entries)
        left = len(self.pending) + len(self.deferred)
        eta = None
        if self.durations and (left or running):
            mean = sum(self.durations) / len(self.durations)
            eta = mean * (left + len(running)) / self.limit
        return SweepStatus(
            sweep=self.sweep.name,
            total=total,
            done=len(self.finished),
            failed=self.result.count(AttemptStatus.FAILED),
            exhausted=len(self.given_up),
            left=left,
            running=running,
            eta_s=eta,
            elapsed_s=time.time() - self.started_at,
            stopping=self.stop.requested,
        )
