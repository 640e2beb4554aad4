"""The tuning loop: an Optuna study whose trials are ordinary runs of the sweep machinery.

:func:`run_study` drives a study with ask/tell from this process only (workers never touch
Optuna). It runs the sweep loop (:class:`~ablate.orchestrate.sweep_loop.SweepLoop`: claims,
``spec.json``, executors, one record per attempt, run-level retries, timeouts, graceful Ctrl-C,
tracker hooks) with a :class:`TrialSource` as its run source, which only changes where the runs
come from:

1. while fewer than ``n_trials`` trials are finished or running, ask a trial, draw its point, build
   its spec with :func:`build_run_spec` (so it gets a run id like any run);
2. a run id that already succeeded in the store is not trained again: its stored objective is told;
3. otherwise the run is dispatched; while it runs, new lines of its ``metrics.jsonl`` carrying the
   intermediate metric are reported to the trial and, when the pruner says so, the job is cancelled
   (SIGTERM: it checkpoints, records ``cancelled``) and the trial is told PRUNED;
4. when the run ends (after its run-level retries), the trial is told COMPLETE with the final
   metric, or FAIL.

Trials lost with a dead orchestrator (Optuna heartbeats need ``study.optimize``) are found through
owner locks (:mod:`ablate.tune.owners`); once their run's claim is free they are told COMPLETE if
the run succeeded after all, else told FAIL and their point enqueued again while the trial retry
budget lasts; the re-asked trial carries ``ablate.retry_of`` so the failed one no longer
counts toward ``n_trials``. A trial stopped by Ctrl-C is given back the same way, without using
budget.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ablate.errors import SpecError
from ablate.execution.claims import claim_holder
from ablate.orchestrate.lock import SweepLock
from ablate.orchestrate.options import SweepOptions
from ablate.orchestrate.outcomes import EXIT_INTERRUPTED, SweepResult
from ablate.orchestrate.plan import Plan, PlanEntry, RunHistory, RunState, state_of, summarise
from ablate.orchestrate.progress import NullProgress, SweepProgress, SweepStatus
from ablate.orchestrate.sweep_loop import SweepLoop
from ablate.spec.run_spec import build_run_spec
from ablate.spec.sweep import PlannedRun
from ablate.store.record import AttemptRecord, AttemptStatus, FailureKind
from ablate.store.run_folder import METRICS_FILE, read_new_metric_lines
from ablate.tune.owners import OwnerLock, owner_alive
from ablate.tune.study import (
    ERROR_ATTR,
    OWNER_ATTR,
    RETRY_ATTR,
    RETRY_OF_ATTR,
    REUSED_ATTR,
    RUN_ID_ATTR,
    apply_params,
    enqueue_initial,
    settled_and_running,
    storage_kind,
    suggest,
)

if TYPE_CHECKING:
    import optuna

    from ablate.execution.base import Executor
    from ablate.spec.sweep import Sweep
    from ablate.store.layout import RunsLayout
    from ablate.store.results_store import ResultsStore
    from ablate.tune.search_spec import SearchSpec

RECOVER_EVERY_S = 2.0
OWNERLESS_GRACE_S = 60.0
COUNTS_EVERY_S = 1.0


@dataclass
class TuneResult:
    """What one ``ablate tune`` invocation did.

    Attributes:
        study: the study name.
        storage: where it lives.
        told: trial number -> state name (COMPLETE, PRUNED, FAIL) for trials this invocation ended.
        interrupted: SIGINT/SIGTERM stopped it (trials given back, the next invocation resumes).
        records: attempt records of the runs it dispatched.
    """

    study: str
    storage: str
    told: dict[int, str] = field(default_factory=dict)
    interrupted: bool = False
    records: list[AttemptRecord] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0, or 130 after an interrupt."""
        return EXIT_INTERRUPTED if self.interrupted else 0


class TrialSource:
    """The sweep loop's run source for a study: a trial is asked whenever a slot is free.

    Args:
        sweep: the tune file loaded as a sweep; its single run is the base every trial changes.
        study: the Optuna study.
        search: the validated ``search:`` section.
        n_trials: the study's trial budget.
        owner: this tuner's owner name (its trials carry it; see :mod:`ablate.tune.owners`).
        store: the results store (reused successes, run histories).
        retries: failed attempts allowed per run beyond the first.
        progress: where trial events are shown.
    """

    def __init__(
        self,
        sweep: Sweep,
        *,
        study: optuna.Study,
        search: SearchSpec,
        n_trials: int,
        owner: str,
        store: ResultsStore,
        retries: int,
        progress: SweepProgress,
    ) -> None:
        self.sweep = sweep
        self.study = study
        self.search = search
        self.n_trials = n_trials
        self.owner = owner
        self.store = store
        self.layout: RunsLayout = store.layout
        self.retries = retries
        self.progress = progress
        self.base = sweep.runs[0].spec.to_dict()
        self.waiting: dict[str, list[optuna.Trial]] = {}  # run id -> trials told by that run
        self.reports: dict[str, tuple[int, int]] = {}  # run id -> (file offset, reports made)
        self.pruned: set[str] = set()
        self.told: dict[int, str] = {}
        self._last_recover = 0.0
        self._counts_cache: tuple[float, tuple[int, int]] | None = None

    # ----------------------------------------------------------------------------- hooks
    def begin(self, loop: SweepLoop) -> Plan:
        """No plan: trials are asked as slots free up."""
        return Plan(sweep=self.sweep, entries=(), retries=self.retries, force=False, counts={})

    def turn(self, loop: SweepLoop) -> None:
        """Prune running trials; every ``RECOVER_EVERY_S`` recover trials of dead tuners."""
        self._check_pruning(loop)
        if time.monotonic() - self._last_recover > RECOVER_EVERY_S:
            self._last_recover = time.monotonic()
            self._recover_orphans()

    def wants_more(self) -> bool:
        """Fewer than ``n_trials`` trials are settled or running."""
        settled, running = self._counts()
        return settled + running < self.n_trials

    def run_settled(self, entry: PlanEntry, record: AttemptRecord) -> None:
        """Tell the trials waiting on this run."""
        self._settle(entry.run_id, record)

    def on_stopped(self) -> None:
        """Give back trials still waiting (deferred, or waiting to retry when stopped)."""
        for run_id in list(self.waiting):
            for trial in self.waiting.pop(run_id):
                self._give_back(trial, use_budget=False, why="tuner stopped")

    def end(self, loop: SweepLoop, result: SweepResult) -> None:
        """Nothing to report: the study holds the outcome (see :class:`TuneResult`)."""

    def _counts(self) -> tuple[int, int]:
        """Settled and running trials of the study (see :func:`settled_and_running`).

        Re-read at most every ``COUNTS_EVERY_S`` unless this tuner asked or told since: the loop
        polls faster than a storage should be read.
        """
        now = time.monotonic()
        if self._counts_cache is None or now - self._counts_cache[0] > COUNTS_EVERY_S:
            counts = settled_and_running(self.study.get_trials(deepcopy=False))
            self._counts_cache = (now, counts)
        return self._counts_cache[1]

    def status(self, status: SweepStatus) -> SweepStatus:
        """The loop's snapshot, counted in trials of this study (finished of ``n_trials``)."""
        settled, running = self._counts()
        left = max(0, self.n_trials - settled - running)
        return replace(
            status,
            sweep=self.study.study_name,
            total=self.n_trials,
            done=settled,
            left=left,
            eta_s=None,
        )

    # ---------------------------------------------------------------------------- asking
    def add_run(self, loop: SweepLoop) -> None:
        """Ask a trial and start its run (or tell it at once: invalid, reused, exhausted)."""
        import optuna

        trial = self.study.ask()
        self._counts_cache = None
        trial.set_user_attr(OWNER_ATTR, self.owner)
        params = suggest(trial, self.search)
        try:
            spec = build_run_spec(apply_params(self.base, params), file=self.sweep.path)
        except SpecError as err:  # a point the job refuses (e.g. dim not divisible by groups)
            trial.set_user_attr(ERROR_ATTR, str(err)[:1000])
            self._tell(trial, optuna.trial.TrialState.FAIL)
            self.progress.message(f"trial {trial.number}: invalid point: {err}")
            return
        run_id = spec.run_id
        trial.set_user_attr(RUN_ID_ATTR, run_id)
        if run_id in self.waiting:  # the same point is already running here
            self.waiting[run_id].append(trial)
            return
        attempts = self.store.attempts_of(run_id)
        success = [r for r in attempts if r.status is AttemptStatus.SUCCESS]
        if success:
            trial.set_user_attr(REUSED_ATTR, True)
            self.waiting[run_id] = [trial]
            self._settle(run_id, success[-1])
            return
        history = _history(attempts)
        if state_of(history, self.retries, False) is RunState.EXHAUSTED:
            trial.set_user_attr(ERROR_ATTR, f"run {run_id}: failed-attempt budget already spent")
            self._tell(trial, optuna.trial.TrialState.FAIL)
            return
        self.waiting[run_id] = [trial]
        run = PlannedRun(
            spec=spec, axes={"trial": trial.number, **params}, label=f"trial {trial.number}"
        )
        loop.start(PlanEntry(run, RunState.NEW, history, True))

    # --------------------------------------------------------------------------- telling
    def _settle(self, run_id: str, record: AttemptRecord) -> None:
        import optuna

        state = optuna.trial.TrialState
        for trial in self.waiting.pop(run_id, []):
            if record.status is AttemptStatus.SUCCESS:
                value = (record.metrics or {}).get(self.search.objective.metric)
                if value is None:
                    known = ", ".join(sorted(record.metrics or {})) or "none"
                    trial.set_user_attr(
                        ERROR_ATTR,
                        f"objective {self.search.objective.metric!r} not in the run's metrics "
                        f"({known})",
                    )
                    self._tell(trial, state.FAIL)
                else:
                    self._tell(trial, state.COMPLETE, value)
            elif record.status is AttemptStatus.CANCELLED and run_id in self.pruned:
                self._tell(trial, state.PRUNED)
            elif record.status is AttemptStatus.CANCELLED:
                self._give_back(trial, use_budget=False, why="cancelled")
            else:
                trial.set_user_attr(ERROR_ATTR, (record.failure_reason or "failed")[:1000])
                self._tell(trial, state.FAIL)
        self.pruned.discard(run_id)

    def _tell(self, trial: optuna.Trial, state: Any, value: float | None = None) -> None:
        import optuna

        try:
            if state is optuna.trial.TrialState.COMPLETE:
                self.study.tell(trial, value)
            else:
                self.study.tell(trial, state=state)
        except (ValueError, RuntimeError) as err:  # told already (e.g. by a recovering peer)
            self.progress.message(f"trial {trial.number}: could not tell {state.name}: {err}")
            return
        self.told[trial.number] = state.name
        self._counts_cache = None
        shown = f" {value:.6g}" if value is not None else ""
        self.progress.message(f"trial {trial.number} {state.name}{shown}")

    def _give_back(self, trial: optuna.Trial, *, use_budget: bool, why: str) -> None:
        """Tell FAIL and ask the same point again (within the retry budget if ``use_budget``)."""
        import optuna

        params = dict(trial.params)
        retry = int(trial.user_attrs.get(RETRY_ATTR, 0))
        self._tell(trial, optuna.trial.TrialState.FAIL)
        self._requeue(trial.number, params, retry + int(use_budget), why)

    def _requeue(self, number: int, params: dict[str, Any], retry: int, why: str) -> None:
        if retry > self.search.retries:
            self.progress.message(f"trial {number} {why}; retry budget spent, not asked again")
            return
        self.study.enqueue_trial(params, user_attrs={RETRY_ATTR: retry, RETRY_OF_ATTR: number})
        self.progress.message(f"trial {number} {why}; its point is asked again")

    # --------------------------------------------------------------------------- pruning
    def _check_pruning(self, loop: SweepLoop) -> None:
        metric = self.search.intermediate
        if metric is None:
            return
        for active in loop.running():
            run_id = active.entry.run_id
            trials = self.waiting.get(run_id)
            if not trials or active.stop_kind is not None:
                continue
            values = self._new_values(run_id, active.handle.request.run_dir, metric)
            if not values:
                continue
            for trial in trials:
                for step, value in values:
                    trial.report(value, step)
            if any(trial.should_prune() for trial in trials):
                self.pruned.add(run_id)
                self.progress.message(
                    f"trial {trials[0].number} ({run_id}) pruned at report {values[-1][0]}"
                )
                loop.ask_to_stop(active, FailureKind.CANCELLED)

    def _new_values(self, run_id: str, run_dir: Path, metric: str) -> list[tuple[int, float]]:
        """Complete new lines of ``metrics.jsonl`` with ``metric``, numbered by report order."""
        offset, count = self.reports.get(run_id, (0, 0))
        lines, offset = read_new_metric_lines(run_dir / METRICS_FILE, offset)
        reported = [metrics[metric] for _step, _stamp, metrics in lines if metric in metrics]
        values = list(enumerate(reported, start=count))
        self.reports[run_id] = (offset, count + len(values))
        return values

    # -------------------------------------------------------------------------- recovery
    def _recover_orphans(self) -> None:
        """RUNNING trials whose tuner died: tell FAIL, enqueue the point again within budget."""
        import optuna

        sweep_dir = self.layout.sweep_dir(self.sweep.name)
        now = time.time()
        for trial in self.study.get_trials(
            deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)
        ):
            owner = trial.user_attrs.get(OWNER_ATTR)
            if owner == self.owner or owner_alive(sweep_dir, owner):
                continue
            started = trial.datetime_start.timestamp() if trial.datetime_start else now
            if owner is None and now - started < OWNERLESS_GRACE_S:
                continue  # just asked by a peer that has not written its owner yet
            run_id = trial.user_attrs.get(RUN_ID_ATTR)
            if run_id and claim_holder(self.layout, run_id) is not None:
                continue  # its worker is still finishing; look again later
            if run_id and self._complete_from_store(trial.number, run_id):
                continue  # its run finished before the tuner died: nothing to redo
            try:
                self.study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
            except (ValueError, RuntimeError):
                continue  # a peer recovered it first
            self.told[trial.number] = "FAIL"
            self._counts_cache = None
            retry = int(trial.user_attrs.get(RETRY_ATTR, 0)) + 1
            self._requeue(
                trial.number,
                dict(trial.params),
                retry,
                f"was left running by {owner or 'a dead tuner'}",
            )

    def _complete_from_store(self, number: int, run_id: str) -> bool:
        """Tell an orphaned trial COMPLETE when its run succeeded after all (True if told)."""
        done = [r for r in self.store.attempts_of(run_id) if r.status is AttemptStatus.SUCCESS]
        value = (done[-1].metrics or {}).get(self.search.objective.metric) if done else None
        if value is None:
            return False
        try:
            self.study.tell(number, value)
        except (ValueError, RuntimeError):
            return True  # a peer told it first
        self.told[number] = "COMPLETE"
        self._counts_cache = None
        self.progress.message(f"trial {number} COMPLETE {value:.6g} (ended after its tuner died)")
        return True


def _history(attempts: list[AttemptRecord]) -> RunHistory:
    if not attempts:
        return RunHistory()
    columns = {
        "run_id": [r.run_id for r in attempts],
        "attempt": [r.attempt for r in attempts],
        "status": [r.status.value for r in attempts],
        "sweep": [r.sweep for r in attempts],
        "failure_kind": [r.failure_kind.value if r.failure_kind else None for r in attempts],
    }
    return next(iter(summarise(columns).values()))


def run_study(
    sweep: Sweep,
    search: SearchSpec,
    *,
    study: optuna.Study,
    storage: str,
    executor: Executor,
    store: ResultsStore,
    n_trials: int | None = None,
    **options: Any,
) -> TuneResult:
    """Run ``study`` until ``n_trials`` trials are finished; resumable and interruptible.

    Args:
        sweep: the tune file loaded as a sweep; its single run is the base every trial changes.
        search: the validated ``search:`` section.
        study: the Optuna study (:func:`ablate.tune.study.open_study`).
        storage: the study's storage string (``sqlite:`` takes the sweep lock: one tuner only).
        executor: where runs go (``make_executor``).
        store: the results store.
        n_trials: the study's trial budget (default ``search.n_trials``; grid: every point).
        **options: the fields of :class:`~ablate.orchestrate.orchestrator.SweepOptions`, as for
            ``ablate sweep``: ``retries`` (run-level), ``max_parallel`` (trials at once),
            ``progress``, ``tracker`` (each trial's run is a child run labelled ``trial <n>``),
            ``timeout_s``, ``grace_s``, ``poll_s`` (running jobs and their metrics),
            ``install_signal_handlers``, ``command`` (written into the sweep lock).

    Raises:
        SweepLockedError: SQLite storage and another tuner runs this study.
        SpecError: the tune file does not expand to exactly one base run.
        TypeError: an option that is not a ``SweepOptions`` field.
    """
    if len(sweep.runs) != 1:
        raise SpecError(
            f"a tune file must describe one base run (it expands to {len(sweep.runs)}): the "
            "search: section varies it; drop grid/runs/seeds or move them into search.space",
            file=sweep.path,
        )
    budget = n_trials or search.n_trials
    if search.sampler.name == "grid" and n_trials is None:
        budget = len(search.grid_points())
    opts = SweepOptions(**options)
    enqueue_initial(study, search)
    layout = store.layout
    lock = SweepLock(layout, sweep.name, command=opts.command)
    use_lock = storage_kind(storage) == "sqlite"
    if use_lock:
        lock.acquire()
    try:
        with (
            OwnerLock(layout.sweep_dir(sweep.name)) as owner,
            opts.stop_signals(executor) as stop,
        ):
            source = TrialSource(
                sweep,
                study=study,
                search=search,
                n_trials=budget,
                owner=owner.name,
                store=store,
                retries=opts.retries,
                progress=opts.progress or NullProgress(),
            )
            loop = SweepLoop(
                sweep,
                executor=executor,
                store=store,
                options=opts,
                stop=stop,
                source=source,
                idle_wait_s=opts.poll_s * 5,
            )
            result = loop.run()
    finally:
        if use_lock:
            lock.release()
    return TuneResult(
        study=study.study_name,
        storage=storage,
        told=dict(source.told),
        interrupted=result.interrupted,
        records=list(result.records),
    )
