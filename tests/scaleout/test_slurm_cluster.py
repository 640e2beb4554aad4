"""A real one-node SLURM (``.ci/slurm-up``): sweeps go through sbatch as job arrays.

Skipped, with the reason, where no SLURM controller answers. Covers: non-blocking submission,
the worker's own records in the shared store, a failed task that SLURM shows FAILED, a preempted
task (SIGTERM then USR2, as submitit simulates preemption) that checkpoints, is requeued and
resumes, a run past its time limit that is requeued until done, and a ``scancel``-ed run that a
rerun of the sweep submits again; every run ends with exactly one success record.
"""

from __future__ import annotations

import time

import pytest
from slurm_helpers import (
    job_env,
    progress_step,
    slurm,
    start_if_held,
    wait_for,
    write_sweep,
)

from ablate.execution.slurm.executor import SlurmExecutor, SlurmResources
from ablate.execution.slurm.watch import (
    LIVE_STATES,
    record_lost_slurm_attempts,
    slurm_available,
    slurm_run_states,
)
from ablate.orchestrate.orchestrator import run_sweep
from ablate.store.record import AttemptStatus, FailureKind
from ablate.store.results_store import ResultsStore
from ablate.tracking.detached import reported_attempts
from ablate.tracking.mlflow_tracker import MlflowTracker

WHY_NOT = slurm_available()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(WHY_NOT is not None, reason=f"no SLURM here ({WHY_NOT}); run .ci/slurm-up"),
]


def start_requeued_now(job_id: str) -> None:
    """Skip most of SLURM's wait before a requeued job is eligible again (best effort)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if start_if_held(job_id) and "BeginTime" not in slurm(
            "squeue", "-h", "-j", job_id, "-o", "%r"
        ):
            return
        time.sleep(0.5)


def executor(store: ResultsStore) -> SlurmExecutor:
    resources = SlurmResources(cpus=1, mem_gb=0.25, time_min=10, array_parallelism=3)
    return SlurmExecutor(resources, runs_root=store.root, grace_s=10)


def by_label(sweep, label: str) -> str:
    return next(r.spec.run_id for r in sweep.runs if r.label == label)


def statuses(store: ResultsStore, run_id: str) -> list[tuple[int, str]]:
    return sorted((r.attempt, r.status.value) for r in store.attempts_of(run_id))


def test_sweep_through_sbatch_with_failure_and_preemption(tmp_path, monkeypatch):
    job_env(monkeypatch)
    store = ResultsStore(tmp_path / "runs")
    sweep = write_sweep(
        tmp_path,
        "slurmq",
        """
        base: {job: quick-fit}
        runs:
          - {label: ok, fit.steps: 5}
          - {label: fails, fit.fail_attempts: 9}
          - {label: preempted, fit.steps: 80, fit.sleep_per_step: 0.2}
        """,
    )
    ok, fails, preempted = (by_label(sweep, n) for n in ("ok", "fails", "preempted"))
    started = time.monotonic()
    result = run_sweep(
        sweep, executor=executor(store), store=store, install_signal_handlers=False, detach=True
    )
    assert time.monotonic() - started < 20, "submission must not wait for the jobs"
    assert result.exit_code == 0 and result.records == []
    jobs = slurm_run_states(store, "slurmq")
    assert set(jobs) == {ok, fails, preempted}
    assert len({j["job_id"].split("_")[0] for j in jobs.values()}) == 1, "one job array"

    run_dir = store.layout.run_dir("slurmq", preempted)
    wait_for("the long run to make progress", lambda: progress_step(run_dir) >= 5, 120)
    job_id = jobs[preempted]["job_id"]
    slurm("scancel", "--signal=TERM", job_id)  # what a preemption sends first ...
    slurm("scancel", "--signal=USR2", job_id)  # ... and submitit's checkpoint signal

    wait_for("the preempted attempt's record", lambda: store.attempts_of(preempted), 60)
    start_requeued_now(job_id)

    def all_settled():
        states = slurm_run_states(store, "slurmq")
        for info in states.values():
            if info["state"] == "PENDING":
                start_if_held(info["job_id"])
        if any(s["state"] in LIVE_STATES for s in states.values()):
            return None
        return states

    states = wait_for("every SLURM task to end", all_settled, 240, every_s=1.0)
    assert statuses(store, ok) == [(1, "success")]
    assert states[ok]["state"] == "COMPLETED"
    [failed] = store.attempts_of(fails)
    assert failed.status is AttemptStatus.FAILED and failed.failure_kind is FailureKind.ERROR
    assert "injected failure" in failed.failure_reason
    assert states[fails]["state"] == "FAILED", "a failed run must not look completed to SLURM"
    # preempted: attempt 1 checkpointed and recorded cancelled, the requeued task resumed it
    assert statuses(store, preempted) == [(1, "cancelled"), (2, "success")]
    success = next(r for r in store.attempts_of(preempted) if r.status is AttemptStatus.SUCCESS)
    assert 0 < success.metrics["steps_run"] < 80, "the requeued attempt resumed from a checkpoint"
    assert success.executor == "slurm"
    assert states[preempted]["job_id"] == job_id, "requeued as the same SLURM task"
    assert record_lost_slurm_attempts(store, "slurmq") == []

    # rerun: nothing is done twice; the failed run is out of retries (0) and not resubmitted
    again = run_sweep(
        sweep,
        executor=executor(store),
        store=store,
        retries=0,
        install_signal_handlers=False,
        detach=True,
    )
    assert again.not_done == [fails]
    assert slurm_run_states(store, "slurmq")[ok]["job_id"] == jobs[ok]["job_id"]


def test_scancelled_run_is_submitted_again_and_recorded_once(tmp_path, monkeypatch):
    job_env(monkeypatch)
    store = ResultsStore(tmp_path / "runs")
    sweep = write_sweep(
        tmp_path, "slurmc", "base: {job: quick-fit, fit: {steps: 60, sleep_per_step: 0.2}}\n"
    )
    [run] = sweep.runs
    run_id = run.spec.run_id
    run_sweep(
        sweep, executor=executor(store), store=store, install_signal_handlers=False, detach=True
    )
    run_dir = store.layout.run_dir("slurmc", run_id)
    wait_for("the run to make progress", lambda: progress_step(run_dir) >= 5, 120)
    first_job = slurm_run_states(store, "slurmc")[run_id]["job_id"]
    slurm("scancel", first_job)
    wait_for("the cancelled record", lambda: store.attempts_of(run_id), 60)
    [cancelled] = store.attempts_of(run_id)
    assert cancelled.status is AttemptStatus.CANCELLED
    wait_for(
        "SLURM to end the cancelled task",
        lambda: slurm_run_states(store, "slurmc")[run_id]["state"] not in LIVE_STATES,
        60,
    )
    assert slurm_run_states(store, "slurmc")[run_id]["state"] == "CANCELLED"

    run_sweep(
        sweep, executor=executor(store), store=store, install_signal_handlers=False, detach=True
    )
    second_job = slurm_run_states(store, "slurmc")[run_id]["job_id"]
    assert second_job != first_job
    wait_for(
        "the resubmitted run to succeed",
        lambda: any(r.status is AttemptStatus.SUCCESS for r in store.attempts_of(run_id)),
        180,
        every_s=1.0,
    )
    assert statuses(store, run_id) == [(1, "cancelled"), (2, "success")]
    success = store.attempts_of(run_id)[-1]
    assert success.metrics["steps_run"] < 60, "resumed from the checkpoint of the cancelled attempt"


def test_time_limit_checkpoints_requeues_and_resumes(tmp_path, monkeypatch):
    """A run longer than its 1-minute limit: SLURM's USR2 before the limit, requeue, resume."""
    job_env(monkeypatch)
    store = ResultsStore(tmp_path / "runs")
    sweep = write_sweep(
        tmp_path, "slurmt", "base: {job: quick-fit, fit: {steps: 150, sleep_per_step: 0.5}}\n"
    )  # 75 s of work: longer than the 1-minute limit, so SLURM must signal at least once
    [run] = sweep.runs
    run_id = run.spec.run_id
    # SLURM checks time limits every ~30 s, so a period may end early: allow more requeues
    resources = SlurmResources(cpus=1, mem_gb=0.25, time_min=1, signal_delay_s=30, max_requeues=6)
    executor = SlurmExecutor(resources, runs_root=store.root, grace_s=10)
    tracker = MlflowTracker(store.root, f"sqlite:///{tmp_path / 'mlflow.db'}")
    run_sweep(
        sweep,
        executor=executor,
        store=store,
        tracker=tracker,
        install_signal_handlers=False,
        detach=True,
    )

    def finished():
        info = slurm_run_states(store, "slurmt")[run_id]
        if info["state"] == "PENDING":
            start_if_held(info["job_id"])
        return info["state"] not in LIVE_STATES and info

    info = wait_for("the run to end", finished, 300, every_s=2.0)
    records = sorted(store.attempts_of(run_id), key=lambda r: r.attempt)
    assert info["state"] == "COMPLETED", [r.failure_reason for r in records]
    assert [r.status for r in records[:-1]] == [AttemptStatus.CANCELLED] * (len(records) - 1)
    assert 2 <= len(records) <= 7, "requeued at least once, at most max_requeues times"
    assert records[-1].status is AttemptStatus.SUCCESS
    assert records[-1].metrics["steps_run"] < 150, "the last attempt resumed from a checkpoint"
    # the tasks reported every attempt (in the USR2 handler too) to the one MLflow child run
    run_dir = store.layout.run_dir("slurmt", run_id)
    assert reported_attempts(run_dir) == {r.attempt for r in records}
    [child] = [
        r
        for r in tracker.client.client.search_runs([tracker.experiment_id])
        if r.data.tags.get("ablate.run_id") == run_id
    ]
    assert child.info.status == "FINISHED"
    assert child.data.tags["ablate.attempt"] == str(records[-1].attempt)


def test_cli_wait_follows_the_sweep_to_the_end_and_tracks_every_run(tmp_path, monkeypatch):
    """``ablate sweep --runner slurm --wait``: back when every job ended; exit code; MLflow."""
    import subprocess
    import sys

    from mlflow.tracking import MlflowClient

    job_env(monkeypatch)
    write_sweep(
        tmp_path,
        "slurmw",
        """
        base: {job: quick-fit}
        runs:
          - {label: ok, fit.steps: 5}
          - {label: fails, fit.fail_attempts: 9}
        """,
    )
    (tmp_path / "runner.yaml").write_text(
        "executor: slurm\ngpus: 0\ncpus: 1\nmem_gb: 0.25\ntime_min: 10\n"
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    command = [sys.executable, "-m", "ablate.cli", "sweep", str(tmp_path / "slurmw.yaml")]
    command += ["--runner", str(tmp_path / "runner.yaml"), "--runs-dir", str(tmp_path / "runs")]
    command += ["--tracking-uri", uri, "--retries", "0", "--wait", "--poll-s", "2", "-q"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr  # one run failed
    store = ResultsStore(tmp_path / "runs")
    states = slurm_run_states(store, "slurmw")
    assert not any(s["state"] in LIVE_STATES for s in states.values()), "--wait returned early"
    client = MlflowClient(uri)
    [experiment] = [e for e in client.search_experiments() if e.name == "slurmw"]
    children = {
        r.data.tags["ablate.label"]: r
        for r in client.search_runs([experiment.experiment_id])
        if "ablate.run_id" in r.data.tags
    }
    assert children["ok"].info.status == "FINISHED"
    assert children["ok"].data.tags["ablate.status"] == "success"
    assert "steps_run" in children["ok"].data.metrics
    assert children["fails"].info.status == "FAILED"
    assert "injected failure" in children["fails"].data.tags["ablate.failure_reason"]
