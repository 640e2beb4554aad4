"""The orchestrator loop: plan a sweep, dispatch its attempts, record, retry, stop cleanly.

One call, :func:`run_sweep`, runs a sweep to completion on an executor:

1. take the sweep lock (a second ``ablate sweep`` on the same sweep is refused);
2. plan against the results store (done runs are skipped, failed ones retried within budget);
3. for each run to dispatch: claim it, write ``runs/<sweep>/<run_id>/spec.json``, start an attempt;
4. when an attempt ends, make sure it has exactly one record (a worker that died without writing
   one gets a failed record with its exit signal and log tail), release the claim, and retry a
   failure while the budget lasts;
5. on SIGINT/SIGTERM: dispatch nothing more, SIGTERM the workers, wait a grace period, SIGKILL
   stragglers, record every interrupted attempt cancelled, release the lock; exit code 130.
   Rerunning the same command resumes.

Runs another process holds (same run id in another sweep, or workers of a killed orchestrator
still checkpointing) are waited for, then re-planned: usually they are done by then.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ablate.execution.attempt import STOP_REASON_FILE, write_atomic, write_run_files
from ablate.execution.base import AttemptRequest, Executor, JobHandle
from ablate.orchestrate.claims import RunClaim, claim_holder, try_claim
from ablate.orchestrate.lock import SweepLock
from ablate.orchestrate.outcomes import SweepResult, lost_attempt_record
from ablate.orchestrate.plan import DEFAULT_RETRIES, Plan, PlanEntry, RunState, make_plan
from ablate.orchestrate.progress import NullProgress, RunningView, SweepProgress, SweepStatus
from ablate.orchestrate.signals import StopSignals
from ablate.orchestrate.tracker import NullTracker, Tracker
from ablate.store.provenance import git_env
from ablate.store.record import AttemptRecord, AttemptStatus, FailureKind
from ablate.store.results_store import ResultsStore

if TYPE_CHECKING:
    from ablate.spec.sweep import Sweep

DEFAULT_GRACE_S = 30.0
DEFERRED_RECHECK_S = 1.0


@dataclass
class _Active:
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


class _SweepLoop:
    """State of one :func:`run_sweep` call (kept out of the public API)."""

    def __init__(
        self,
        sweep: Sweep,
        *,
        executor: Executor,
        store: ResultsStore,
        retries: int,
        max_parallel: int | None,
        force: bool,
        progress: SweepProgress,
        tracker: Tracker,
        timeout_s: float | None,
        grace_s: float,
        poll_s: float,
        stop: StopSignals,
    ) -> None:
        self.sweep = sweep
        self.executor = executor
        self.store = store
        self.layout = store.layout
        self.retries = retries
        self.limit = max(1, min(max_parallel or executor.capacity, executor.capacity))
        self.force = force
        self.progress = progress
        self.tracker = tracker
        self.timeout_s = timeout_s
        self.grace_s = grace_s
        self.poll_s = poll_s
        self.stop = stop
        self.pending: deque[PlanEntry] = deque()
        self.deferred: dict[str, PlanEntry] = {}
        self.active: list[_Active] = []
        self.failures: dict[str, int] = {}
        self.finished: set[str] = set()
        self.given_up: set[str] = set()
        self.durations: list[float] = []
        self.started_at = time.time()
        self.env = git_env()
        self.result: SweepResult | None = None

    # ------------------------------------------------------------------------------- main
    def run(self) -> SweepResult:
        plan = make_plan(self.sweep, self.store, retries=self.retries, force=self.force)
        self.result = SweepResult(sweep=self.sweep.name, plan=plan)
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
            self.tracker.on_sweep_end(self.sweep, self.stop.requested)
        for notice in self.stop.notices():
            self.progress.message(notice)
        self.result.interrupted = self.stop.requested
        self.result.not_done = [e.run_id for e in plan.entries if e.run_id not in self.finished]
        self.progress.finish(self.result)
        return self.result

    def _loop(self) -> None:
        last_recheck = 0.0
        while not self.stop.requested:
            for active in [a for a in self.active if a.handle.done()]:
                self._finalize(active)
            self._enforce_timeouts()
            while (
                self.pending
                and len(self.active) < self.limit
                and self.executor.free_slots() > 0
                and not self.stop.requested
            ):
                self._start(self.pending.popleft())
            if self.deferred and time.monotonic() - last_recheck > DEFERRED_RECHECK_S:
                last_recheck = time.monotonic()
                self._recheck_deferred()
            self._tick()
            if not (self.pending or self.active or self.deferred):
                return
            if self.active:
                self.stop.wait(self.poll_s)
            elif self.deferred and not self.pending:
                self.stop.wait(DEFERRED_RECHECK_S / 4)

    # ------------------------------------------------------------------------------ start
    def _start(self, entry: PlanEntry) -> None:
        run_id = entry.run_id
        claim = try_claim(self.layout, run_id, sweep=self.sweep.name)
        if claim is None:
            self.progress.message(_held_message(run_id, claim_holder(self.layout, run_id) or {}))
            self.deferred[run_id] = entry
            return
        try:
            attempts = self.store.attempts_of(run_id)
            if not self.force and any(r.status is AttemptStatus.SUCCESS for r in attempts):
                claim.release()  # finished elsewhere since we planned
                self.finished.add(run_id)
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
        active = _Active(entry, handle, claim, attempt, deadline)
        self.active.append(active)
        self.progress.attempt_started(
            entry, attempt, getattr(getattr(handle, "slot", None), "label", "inline")
        )
        if handle.done():  # inline: already finished
            self._finalize(active)

    # --------------------------------------------------------------------------- finalize
    def _finalize(self, active: _Active) -> None:
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

    def _record_of(self, run_id: str, attempt: int) -> AttemptRecord | None:
        matches = [r for r in self.store.attempts_of(run_id) if r.attempt == attempt]
        return matches[-1] if matches else None

    def _write_missing_record(
        self, active: _Active, returncode: int | None, log_tail: str
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
                self._ask_to_stop(active, FailureKind.TIMEOUT)
            elif active.stop_sent_at is not None and now - active.stop_sent_at > self.grace_s:
                active.handle.kill()

    def _ask_to_stop(self, active: _Active, kind: FailureKind) -> None:
        active.stop_kind = kind
        active.stop_sent_at = time.monotonic()
        if kind is FailureKind.TIMEOUT:
            write_atomic(active.handle.request.run_dir / STOP_REASON_FILE, "timeout\n")
        active.handle.cancel()

    def _stop_all(self) -> None:
        """SIGTERM every running attempt, wait the grace period, SIGKILL the rest, record all."""
        for active in self.active:
            if active.stop_kind is None:
                self._ask_to_stop(active, FailureKind.CANCELLED)
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
        self.progress.tick(self._status())

    def _status(self) -> SweepStatus:
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


def run_sweep(
    sweep: Sweep,
    *,
    executor: Executor,
    store: ResultsStore,
    retries: int = DEFAULT_RETRIES,
    max_parallel: int | None = None,
    force: bool = False,
    progress: SweepProgress | None = None,
    tracker: Tracker | None = None,
    timeout_s: float | None = None,
    grace_s: float = DEFAULT_GRACE_S,
    poll_s: float = 0.1,
    install_signal_handlers: bool = True,
    command: str | None = None,
) -> SweepResult:
    """Run a sweep to completion on ``executor``; resumable, interruptible, one record per attempt.

    Args:
        sweep: the expanded sweep (from ``ablate.spec.sweep.load_sweep``).
        executor: where attempts run (``make_executor(profile, store)``).
        store: the results store; its root is the runs root.
        retries: failed attempts allowed beyond the first, counted over the run's whole history.
        max_parallel: at most this many attempts at once (default: the executor's capacity).
        force: rerun done and exhausted runs (history ignored for the budget).
        progress: the display (default: none).
        tracker: experiment-tracker hooks (default: :class:`NullTracker`).
        timeout_s: stop an attempt after this many seconds; it is recorded failed (timeout).
        grace_s: seconds a stopped job gets to checkpoint before SIGKILL.
        poll_s: how often running attempts are polled.
        install_signal_handlers: turn SIGINT/SIGTERM into a graceful stop (main thread only).
        command: the command line written into the sweep lock (default ``sys.argv``).

    Returns:
        What ran; ``result.exit_code`` is 0 (all done), 1 (some not done) or 130 (interrupted).

    Raises:
        SweepLockedError: another orchestrator runs this sweep (the message names it).
        ValueError: ``retries`` is negative.
    """
    progress = progress or NullProgress()
    tracker = tracker or NullTracker()
    if getattr(executor, "detached", False):
        # A detached executor (slurm) takes the whole plan and returns once it is submitted: the
        # cluster runs the attempts and the workers record them; `ablate status` reattaches.
        with SweepLock(store.layout, sweep.name, command=command):
            return executor.submit_sweep(  # type: ignore[attr-defined]
                sweep,
                store=store,
                retries=retries,
                force=force,
                progress=progress,
                tracker=tracker,
            )
    with (
        SweepLock(store.layout, sweep.name, command=command),
        StopSignals(
            install=install_signal_handlers, interrupt_on_second=executor.name == "inline"
        ) as stop,
    ):
        loop = _SweepLoop(
            sweep,
            executor=executor,
            store=store,
            retries=retries,
            max_parallel=max_parallel,
            force=force,
            progress=progress,
            tracker=tracker,
            timeout_s=timeout_s,
            grace_s=grace_s,
            poll_s=poll_s,
            stop=stop,
        )
        return loop.run()


def plan_sweep(
    sweep: Sweep, store: ResultsStore, *, retries: int = DEFAULT_RETRIES, force: bool = False
) -> Plan:
    """The plan :func:`run_sweep` would start from (for ``--dry-run`` and ``ablate status``)."""
    return make_plan(sweep, store, retries=retries, force=force)
