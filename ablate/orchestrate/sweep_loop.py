"""The sweep loop: dispatch attempts, record them, retry, time out, stop cleanly.

:class:`SweepLoop` is what :func:`~ablate.orchestrate.orchestrator.run_sweep` runs once it holds
the sweep lock:

1. plan against the results store (done runs are skipped, failed ones retried within budget);
2. for each run to dispatch: claim it, write ``runs/<sweep>/<run_id>/spec.json``, start an attempt;
3. when an attempt ends, make sure it has exactly one record (a worker that died without writing
   one gets a failed record with its exit signal and log tail), release the claim, and retry a
   failure while the budget lasts (a config error, the spec's fault, is never retried and never
   spends the budget: a rerun after the fix runs it);
4. on SIGINT/SIGTERM: dispatch nothing more, SIGTERM the workers, wait a grace period, SIGKILL
   stragglers, record every interrupted attempt cancelled; exit code 130. Rerunning the same
   command resumes.

Runs another process holds (same run id in another sweep, or workers of a killed orchestrator
still checkpointing) are waited for, then re-planned: usually they are done by then.

A detached loop (``ablate sweep --runner slurm``) does steps 1 and 2 for every run at once, hands
them to the executor in one ``submit_many`` (SLURM job arrays) and returns: the jobs claim their
runs and record themselves, and ``ablate status`` follows them.

Where the runs come from is the loop's :class:`~ablate.orchestrate.run_source.RunSource`: the
sweep's plan by default, an Optuna study for ``ablate tune`` (:mod:`ablate.tune.tuner`).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ablate.execution.base import AttemptRequest, Executor, JobHandle
from ablate.execution.claims import RunClaim, claim_holder, try_claim
from ablate.execution.lost_attempts import lost_attempt_record
from ablate.orchestrate.outcomes import SweepResult
from ablate.orchestrate.plan import Plan, PlanEntry, RunState
from ablate.orchestrate.progress import NullProgress, RunningView, SweepStatus
from ablate.orchestrate.run_source import RunSource, SweepPlan
from ablate.orchestrate.tracker import NullTracker
from ablate.store.files import write_atomic
from ablate.store.provenance import git_env
from ablate.store.record import CONFIG_FAILURES, AttemptRecord, AttemptStatus, FailureKind
from ablate.store.run_folder import STOP_REASON_FILE, write_run_files
from ablate.tracking.config import remember_secrets

if TYPE_CHECKING:
    from ablate.orchestrate.options import SweepOptions
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

    :func:`~ablate.orchestrate.orchestrator.run_sweep` and ``ablate tune`` build one per call;
    :meth:`run` returns the :class:`~ablate.orchestrate.outcomes.SweepResult`. Its ``source``
    decides which runs start (see :class:`~ablate.orchestrate.run_source.RunSource`) and drives
    it through :meth:`start`, :meth:`running` and :meth:`ask_to_stop`.

    Args:
        sweep: the expanded sweep.
        executor: where attempts run.
        store: the results store.
        options: the shared loop options (``options.detach``: submit and return).
        stop: the stop request (``options.stop_signals(executor)``, entered).
        force: rerun done and exhausted runs (history ignored for the budget).
        source: where runs come from (default: the sweep's plan).
        idle_wait_s: how long a turn with nothing running waits (default: a quarter of the
            re-check period of runs held elsewhere).
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
        source: RunSource | None = None,
        idle_wait_s: float = DEFERRED_RECHECK_S / 4,
    ) -> None:
        self.sweep = sweep
        self.executor = executor
        self.store = store
        self.layout = store.layout
        self.retries = options.retries
        cap = executor.capacity
        self.limit = max(1, min(options.max_parallel or cap, cap))
        self.force = force
        self.detach = options.detach
        self.source: RunSource = source or SweepPlan()
        self.progress = options.progress or NullProgress()
        self.tracker = options.tracker or NullTracker()
        self.timeout_s = options.timeout_s
        self.grace_s = options.grace_s
        self.poll_s = options.poll_s
        self.idle_wait_s = idle_wait_s
        self.stop = stop
        self.result: SweepResult | None = None
        self._pending: deque[PlanEntry] = deque()
        self._deferred: dict[str, PlanEntry] = {}
        self._active: list[ActiveAttempt] = []
        self._failures: dict[str, int] = {}
        self._finished: set[str] = set()
        self._given_up: set[str] = set()
        self._handed_off: set[str] = set()  # detached: runs whose jobs now own them
        self._durations: list[float] = []
        self._started_at = time.time()
        self._env = git_env()

    # ------------------------------------------------------------------------------- main
    def run(self) -> SweepResult:
        """Run until every run is settled, a stop is requested, or (detached) all are submitted.

        Raises:
            ValueError: ``detach`` on an executor whose jobs end with this process.
        """
        if self.detach and not self.executor.detachable:
            raise ValueError(
                f"the {self.executor.name} executor's jobs end with this process: "
                "it cannot run a sweep detached"
            )
        self.executor.check_ready()
        plan = self.source.begin(self)
        self._queue(plan)
        self.result = SweepResult(sweep=self.sweep.name, plan=plan)
        self.tracker.on_sweep_start(self.sweep, plan)
        self.executor.bind_stop(self.stop)
        try:
            try:
                if self.detach:
                    self._submit_detached()
                else:
                    self._loop()
            except KeyboardInterrupt:  # a second Ctrl-C outside an inline job: stop now
                self.stop.request("KeyboardInterrupt")
        finally:
            if self._active:
                self._stop_all()
            self.executor.shutdown()
            self.source.on_stopped()
            self.tracker.on_sweep_end(self.sweep, self.stop.requested)
        for notice in self.stop.notices():
            self.progress.message(notice)
        self.result.interrupted = self.stop.requested
        settled = self._finished | self._handed_off
        self.result.not_done = [e.run_id for e in plan.entries if e.run_id not in settled]
        self.source.end(self, self.result)
        return self.result

    def _queue(self, plan: Plan) -> None:
        """Sort the plan's runs: to dispatch, held elsewhere (deferred), done, given up."""
        for entry in plan.entries:
            self._failures[entry.run_id] = 0 if self.force else entry.history.failures
            if entry.state is RunState.RUNNING:
                self._deferred[entry.run_id] = entry
            elif entry.dispatch:
                self._pending.append(entry)
            elif entry.state is RunState.DONE:
                self._finished.add(entry.run_id)
            else:
                self._given_up.add(entry.run_id)
        for run_id, entry in self._deferred.items():
            self.progress.message(_held_message(run_id, entry.holder or {}))

    def _loop(self) -> None:
        last_recheck = 0.0
        while not self.stop.requested:
            for active in [a for a in self._active if a.handle.done()]:
                self._finalize(active)
            self.source.turn(self)
            self._enforce_timeouts()
            while self._pending and self._free() and not self.stop.requested:
                self.start(self._pending.popleft())
            if self._deferred and time.monotonic() - last_recheck > DEFERRED_RECHECK_S:
                last_recheck = time.monotonic()
                self._recheck_deferred()
            while self._free() and not self.stop.requested and self.source.wants_more():
                self.source.add_run(self)
            self._tick()
            if not (self._pending or self._active or self._deferred or self.source.wants_more()):
                return
            self.stop.wait(self.poll_s if self._active else self.idle_wait_s)

    def _free(self) -> bool:
        return len(self._active) < self.limit and self.executor.free_slots() > 0

    def running(self) -> list[ActiveAttempt]:
        """The attempts started and not yet recorded (a copy: stopping one is ``ask_to_stop``)."""
        return list(self._active)

    # ------------------------------------------------------------------------------ start
    def start(self, entry: PlanEntry) -> None:
        """Claim ``entry``'s run and start its next attempt (deferred if another holds it).

        A run the loop has not seen yet (a source's new run) has its failed attempts counted
        from ``entry.history`` for the retry budget.
        """
        run_id = entry.run_id
        self._failures.setdefault(run_id, 0 if self.force else entry.history.failures)
        claim = try_claim(self.layout, run_id, sweep=self.sweep.name)
        if claim is None:
            self.progress.message(_held_message(run_id, claim_holder(self.layout, run_id) or {}))
            self._deferred[run_id] = entry
            return
        try:
            attempts = self.store.attempts_of(run_id)
            done = [r for r in attempts if r.status is AttemptStatus.SUCCESS]
            if not self.force and done:
                claim.release()  # finished elsewhere since we planned
                self._finished.add(run_id)
                self.source.run_settled(entry, done[-1])
                return
            attempt = self.store.next_attempt(run_id)
            claim.note(sweep=self.sweep.name, attempt=attempt, since=time.time())
            request = self._request(entry, attempt, hold_fds=(claim.fd,))
            (request.run_dir / STOP_REASON_FILE).unlink(missing_ok=True)
            deadline = time.monotonic() + self.timeout_s if self.timeout_s else None
            handle = self.executor.submit(request)
        except BaseException:
            claim.release()
            raise
        active = ActiveAttempt(entry, handle, claim, attempt, deadline)
        self._active.append(active)
        self.progress.attempt_started(entry, attempt, handle.label)
        if handle.done():  # inline: already finished
            self._finalize(active)

    def _request(
        self, entry: PlanEntry, attempt: int, *, hold_fds: tuple[int, ...], detached: bool = False
    ) -> AttemptRequest:
        """Write the run's files and build its attempt's request (tracker environment included)."""
        run_dir = self.layout.run_dir(self.sweep.name, entry.run_id)
        write_run_files(
            run_dir, entry.run.spec.to_json(), sweep=self.sweep.name, axes=entry.run.axes
        )
        env = {**self._env, **(self.tracker.on_attempt_start(entry.run, attempt) or {})}
        remember_secrets(env)  # masked in what this process uploads, as the profile's env
        return AttemptRequest(
            entry.run_id,
            self.sweep.name,
            attempt,
            run_dir,
            axes=dict(entry.run.axes),
            env=env,
            hold_fds=hold_fds,
            detached=detached,
        )

    # --------------------------------------------------------------------------- detached
    def _submit_detached(self) -> None:
        """Write every queued run's files, submit them all at once, and return without waiting.

        Runs whose job from an earlier submission is still queued or running are not submitted
        again; the jobs claim their runs and write their records themselves.
        """
        assert self.result is not None
        queued = self.executor.queued_runs(self.store, self.sweep.name)
        highest = self.store.highest_attempts()  # one listing, not one per run
        entries: list[PlanEntry] = []
        requests: list[AttemptRequest] = []
        for entry in self._pending:
            if entry.run_id in queued:
                why = queued[entry.run_id]
                self.progress.message(f"{entry.run_id}: {why}; not submitted again")
                continue
            attempt = highest.get(entry.run_id, 0) + 1
            requests.append(self._request(entry, attempt, hold_fds=(), detached=True))
            entries.append(entry)
        self._pending.clear()
        handles = self.executor.submit_many(requests)
        for entry, handle in zip(entries, handles, strict=True):
            self.progress.attempt_started(entry, handle.request.attempt, handle.label)
        self.result.submitted = [r.run_id for r in requests]
        self._handed_off.update(self.result.submitted, queued)
        self._finished.update(r for r, e in self._deferred.items() if e.history.succeeded_in)
        self._deferred.clear()
        scale = f" --scale {self.sweep.scale}" if self.sweep.scale else ""
        batches = ", ".join(sorted({h.batch for h in handles})) or "nothing"
        self.progress.message(
            f"submitted {len(requests)} run(s) to {self.executor.name} as {batches}; "
            f"`ablate status {self.sweep.path}{scale}` follows them"
        )

    # --------------------------------------------------------------------------- finalize
    def _finalize(self, active: ActiveAttempt) -> None:
        self._active.remove(active)
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
            self._durations.append(record.duration_s)
        self.tracker.on_attempt_end(active.entry.run, record)
        retry = False
        if record.status is AttemptStatus.SUCCESS:
            self._finished.add(run_id)
        elif record.failure_kind in CONFIG_FAILURES:  # the spec's fault: no retry, no budget
            self._given_up.add(run_id)
        elif record.status is AttemptStatus.FAILED:
            self._failures[run_id] = self._failures.get(run_id, 0) + 1
            retry = self._failures[run_id] <= self.retries and not self.stop.requested
            if retry:
                self._pending.append(active.entry)
            else:
                self._given_up.add(run_id)
        self.progress.attempt_finished(active.entry, record, retry)
        if record.failure_kind in CONFIG_FAILURES:
            self.progress.message(
                f"{run_id}: a config error (the spec's fault): not retried and not counted "
                "against --retries; fix the spec, then rerun the same command"
            )
        if not retry:
            self.source.run_settled(active.entry, record)

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
            slot=active.handle.label,
            executor=self.executor.name,
            signal_name=self.stop.signal_name,
            timeout_s=self.timeout_s,
        )
        self.store.write(record)
        return record

    # ---------------------------------------------------------------------------- stopping
    def _enforce_timeouts(self) -> None:
        now = time.monotonic()
        for active in self._active:
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
        for active in self._active:
            if active.stop_kind is None:
                self.ask_to_stop(active, FailureKind.CANCELLED)
        for notice in self.stop.notices():
            self.progress.message(notice)
        if self._active:
            self.progress.message(
                f"waiting up to {self.grace_s:g}s for {len(self._active)} running job(s) to stop"
            )
        deadline = time.monotonic() + self.grace_s
        while self._active and time.monotonic() < deadline and not self.stop.hurry:
            for active in [a for a in self._active if a.handle.done()]:
                self._finalize(active)
            self._tick()
            time.sleep(0.05)
        for active in list(self._active):
            if not active.handle.done():
                active.handle.kill()
            while not active.handle.done():
                time.sleep(0.01)
            self._finalize(active)

    def _recheck_deferred(self) -> None:
        for run_id, entry in list(self._deferred.items()):
            if claim_holder(self.layout, run_id) is None:
                del self._deferred[run_id]
                self._pending.appendleft(entry)

    # ----------------------------------------------------------------------------- status
    def _tick(self) -> None:
        for notice in self.stop.notices():
            self.progress.message(notice)
        self.progress.tick(self.source.status(self.status()))

    def status(self) -> SweepStatus:
        """The snapshot the display shows each turn, in plan runs (the source adjusts it)."""
        assert self.result is not None
        running = [
            RunningView(
                run_id=a.entry.run_id,
                attempt=a.attempt,
                axes=dict(a.entry.run.axes),
                label=getattr(a.entry.run, "label", None),
                slot=a.handle.label,
                started_at=a.handle.started_at,
                progress_file=a.handle.progress_file(),
            )
            for a in self._active
        ]
        total = len(self.result.plan.entries)
        left = len(self._pending) + len(self._deferred)
        eta = None
        if self._durations and (left or running):
            mean = sum(self._durations) / len(self._durations)
            eta = mean * (left + len(running)) / self.limit
        return SweepStatus(
            sweep=self.sweep.name,
            total=total,
            done=len(self._finished),
            failed=self.result.count(AttemptStatus.FAILED),
            exhausted=len(self._given_up),
            left=left,
            running=running,
            eta_s=eta,
            elapsed_s=time.time() - self._started_at,
            stopping=self.stop.requested,
        )
