"""MLflow for SLURM attempts, which no orchestrator waits for: the task reports them itself.

No cluster needed: :class:`SlurmAttempt` is called here as SLURM would call it (the real worker
subprocess runs), against a real MLflow store (sqlite). A run's child run must end with the last
attempt's status, metrics and artifacts; a preempted attempt is reported by the requeued task,
which then ends the same child run FINISHED; an attempt whose task died is reported by ``ablate
status``'s catch-up; nothing is reported twice.
"""

from __future__ import annotations

import sys

import pytest
from slurm_helpers import job_env, prepared_run, start_task_until_progress, write_sweep

from ablate.execution.slurm import task as slurm_task
from ablate.execution.slurm import watch as slurm_watch
from ablate.execution.slurm.task import SLURM_JOB_FILE, SlurmAttempt
from ablate.store.record import AttemptStatus
from ablate.store.results_store import ResultsStore
from ablate.tracking.config import RUN_ID_ENV
from ablate.tracking.detached import report_ended_attempts, reported_attempts, tracking_of
from ablate.tracking.mlflow_tracker import MlflowTracker

pytest.importorskip("mlflow")


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    job_env(monkeypatch)
    monkeypatch.setattr(slurm_task, "CANCELLED_WAIT_S", 0.1)


def submitted(tmp_path, body: str):
    """What a detached sweep leaves for one run: spec, child run, the task's environment."""
    store, sweep, run, run_dir = prepared_run(tmp_path, body, "track")
    tracker = MlflowTracker(store.root, f"sqlite:///{tmp_path / 'mlflow.db'}")
    tracker.on_sweep_start(sweep, None)
    env = tracker.on_attempt_start(run, 1)
    assert env[RUN_ID_ENV]  # the task reports to this run itself
    tracker.on_sweep_end(sweep, False)  # submission returns: nobody calls on_attempt_end
    return store, run.spec.run_id, run_dir, env, tracker


def task(store, run_dir, env, n=1) -> SlurmAttempt:
    return SlurmAttempt(
        run_dir, n, runs_root=store.root, env=env, python=sys.executable, grace_s=10
    )


def child_run(tracker, env):
    return tracker.client.client.get_run(tracking_of(env)["mlflow_run_id"])


def test_task_ends_its_child_run_with_status_metrics_and_artifacts(tmp_path):
    store, run_id, run_dir, env, tracker = submitted(tmp_path, "{steps: 5}")
    assert task(store, run_dir, env)()["status"] == "success"
    run = child_run(tracker, env)
    assert run.info.status == "FINISHED"
    assert run.data.tags["ablate.status"] == "success" and run.data.tags["ablate.attempt"] == "1"
    assert run.data.tags["ablate.executor"] == "slurm"
    [record] = store.attempts_of(run_id)
    for key, value in record.metrics.items():
        assert run.data.metrics[key] == pytest.approx(value), key
    artifacts = {a.path for a in tracker.client.client.list_artifacts(run.info.run_id)}
    assert {"spec.json", "worker.log"} <= artifacts
    assert reported_attempts(run_dir) == {1}
    assert report_ended_attempts(store, run_dir, tracking_of(env)) == [], "reported once"


def test_preempted_then_requeued_attempts_end_in_the_same_mlflow_run(tmp_path):
    store, run_id, run_dir, env, tracker = submitted(tmp_path, "{steps: 400, sleep_per_step: 0.02}")
    first = task(store, run_dir, env)
    thread, errors = start_task_until_progress(first, run_dir)
    delayed = first.checkpoint()  # submitit's USR2 handler
    thread.join(30)
    assert errors and "cancelled" in str(errors[0])

    assert delayed.function()["attempt"] == 2  # the requeued task
    run = child_run(tracker, env)
    assert run.info.status == "FINISHED"
    assert run.data.tags["ablate.attempt"] == "2" and run.data.tags["ablate.status"] == "success"
    assert reported_attempts(run_dir) == {1, 2}
    history = tracker.client.client.get_metric_history(run.info.run_id, "grad_norm")
    steps = [m.step for m in history]
    assert steps and len(steps) == len(set(steps)), "no step metric sent twice"
    assert max(steps) > 100, "the resumed attempt's step metrics reached the same run"


def test_status_catch_up_reports_an_attempt_whose_task_died(tmp_path, monkeypatch):
    store, run_id, run_dir, env, tracker = submitted(tmp_path, "{steps: 5}")
    info = {"job_id": "41_0", "attempt": 1, **tracking_of(env)}
    (run_dir / SLURM_JOB_FILE).write_text(__import__("json").dumps(info))
    monkeypatch.setattr(slurm_watch, "query_job_states", lambda jobs: {"41_0": "RUNNING"})
    state = slurm_watch.reattach_slurm_sweep(store, "track")
    assert state.live == [run_id] and not state.lost and not state.reported
    assert child_run(tracker, env).info.status == "RUNNING"

    monkeypatch.setattr(slurm_watch, "query_job_states", lambda jobs: {"41_0": "NODE_FAIL"})
    state = slurm_watch.reattach_slurm_sweep(store, "track")
    [lost] = state.lost
    assert lost.status is AttemptStatus.FAILED and "NODE_FAIL" in lost.failure_reason
    assert state.reported == {run_id: [1]}
    run = child_run(tracker, env)
    assert run.info.status == "FAILED" and run.data.tags["ablate.failure_kind"] == "killed"
    again = slurm_watch.reattach_slurm_sweep(store, "track")
    assert not again.lost and not again.reported, "recorded and reported once"


def test_submitted_runs_are_scheduled_in_mlflow_until_their_task_starts(tmp_path, monkeypatch):
    """A sweep queued for hours must not look RUNNING in the MLflow UI."""
    from ablate.execution.slurm import executor as slurm_executor_mod
    from ablate.execution.slurm.executor import SlurmExecutor, SlurmResources
    from ablate.orchestrate.orchestrator import run_sweep

    store = ResultsStore(tmp_path / "runs")
    sweep = write_sweep(tmp_path, "queued", "base: {job: quick-fit, fit: {steps: 5}}\n")
    requests = []

    def fake_submit(self, reqs):
        requests.extend(reqs)
        return [f"50_{i}" for i in range(len(reqs))]

    monkeypatch.setattr(SlurmExecutor, "submit_arrays", fake_submit)
    monkeypatch.setattr(slurm_executor_mod, "slurm_available", lambda: None)
    monkeypatch.setattr(slurm_watch, "query_job_states", lambda jobs: {})
    tracker = MlflowTracker(store.root, f"sqlite:///{tmp_path / 'mlflow.db'}")
    executor = SlurmExecutor(SlurmResources(), runs_root=store.root)
    run_sweep(
        sweep,
        executor=executor,
        store=store,
        tracker=tracker,
        install_signal_handlers=False,
        detach=True,
    )
    [request] = requests
    run = child_run(tracker, request.env)
    assert run.info.status == "SCHEDULED" and run.data.tags["ablate.status"] == "queued"
    assert task(store, request.run_dir, request.env)()["status"] == "success"  # SLURM starts it
    run = child_run(tracker, request.env)
    assert run.info.status == "FINISHED" and run.data.tags["ablate.status"] == "success"
