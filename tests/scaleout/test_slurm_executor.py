"""The slurm executor without a cluster: profile -> sbatch options, the task supervisor, reattach.

The supervisor (:class:`SlurmAttempt`) is called here as SLURM would call it, in this process:
it starts the real worker subprocess and must leave exactly one record per attempt, raise for
anything but success (so SLURM shows the task FAILED), and on checkpoint stop the worker and hand
back a requeue that takes the next attempt number.
"""

from __future__ import annotations

import pickle
import sys
import time

import pytest
import slurm_helpers
from slurm_helpers import job_env, start_task_until_progress, write_sweep
from submitit.slurm.slurm import _make_sbatch_string

from ablate.errors import SpecError
from ablate.execution.registry import make_executor
from ablate.execution.runner_profile import load_runner_profile, parse_runner_profile
from ablate.execution.slurm import executor as slurm_executor_mod
from ablate.execution.slurm import task as slurm_task
from ablate.execution.slurm import watch as slurm_mod
from ablate.execution.slurm.executor import SlurmExecutor
from ablate.execution.slurm.task import SLURM_JOB_FILE, SlurmAttempt
from ablate.orchestrate.orchestrator import run_sweep
from ablate.store.record import AttemptStatus, FailureKind
from ablate.store.results_store import ResultsStore
from ablate.store.run_folder import write_run_files


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    job_env(monkeypatch)


def profile(**fields):
    return parse_runner_profile({"executor": "slurm", **fields}, name="t", source="t.yaml")


def test_profile_becomes_sbatch_options(tmp_path):
    prof = profile(
        partition="gpu",
        gpus=2,
        cpus=6,
        mem_gb=48,
        time_min=90,
        qos="high",
        account="vlm",
        setup=["module load cuda/12.4"],
        array_parallelism=5,
        signal_delay_s=100,
    )
    executor = make_executor(prof, ResultsStore(tmp_path / "runs"))
    assert isinstance(executor, SlurmExecutor) and executor.detachable
    params = executor.resources.submitit_parameters("ablate-x")
    text = _make_sbatch_string(command="python -m x", folder=tmp_path, map_count=12, **params)
    for line in (
        "#SBATCH --partition=gpu",
        "#SBATCH --gpus-per-node=2",
        "#SBATCH --cpus-per-task=6",
        "#SBATCH --mem=49152MB",
        "#SBATCH --time=90",
        "#SBATCH --qos=high",
        "#SBATCH --account=vlm",
        "#SBATCH --array=0-11%5",
        "#SBATCH --signal=USR2@100",
        "module load cuda/12.4",
    ):
        assert line in text, line
    assert executor.grace_s <= 90, "the worker must stop before SLURM's kill"


def test_max_parallel_caps_the_array_and_shipped_profile_loads(tmp_path):
    store = ResultsStore(tmp_path / "runs")
    assert make_executor(profile(), store, max_parallel=3).resources.array_parallelism == 3
    shipped = load_runner_profile("slurm")
    assert shipped.executor == "slurm" and shipped.gpus == 1
    assert load_runner_profile("slurm", search_dir=tmp_path).time_min == shipped.time_min


def test_bad_slurm_key_is_named():
    with pytest.raises(SpecError, match="did you mean 'partition'"):
        profile(partion="gpu")
    with pytest.raises(SpecError, match="time_min"):
        profile(time_min=0)


def prepared_run(tmp_path, body: str):
    """A run folder with spec.json written, as a detached sweep leaves it."""
    store, _sweep, run, run_dir = slurm_helpers.prepared_run(tmp_path, body)
    return store, run.spec.run_id, run_dir


def attempt(store, run_dir, n=1, **kw) -> SlurmAttempt:
    return SlurmAttempt(
        run_dir, n, runs_root=store.root, env={}, python=sys.executable, grace_s=10, **kw
    )


def test_task_runs_the_worker_which_records_success(tmp_path):
    store, run_id, run_dir = prepared_run(tmp_path, "{steps: 5}")
    out = attempt(store, run_dir)()
    assert out == {"run_id": run_id, "attempt": 1, "status": "success"}
    [record] = store.attempts_of(run_id)
    assert record.status is AttemptStatus.SUCCESS and record.executor == "slurm"
    # requeued by SLURM after it succeeded (node reboot): nothing runs, nothing is recorded
    assert attempt(store, run_dir)()["attempt"] == 1
    assert len(store.attempts_of(run_id)) == 1
    assert "already succeeded" in (run_dir / "worker.log").read_text()


def test_failed_task_raises_so_slurm_marks_it_failed(tmp_path):
    store, run_id, run_dir = prepared_run(tmp_path, "{fail_attempts: 3}")
    with pytest.raises(RuntimeError, match="attempt 1 failed: RuntimeError: injected failure"):
        attempt(store, run_dir)()
    [record] = store.attempts_of(run_id)
    assert record.failure_kind is FailureKind.ERROR


def test_worker_dying_without_record_gets_one_from_the_task(tmp_path):
    store, run_id, run_dir = prepared_run(tmp_path, "{die_attempts: 1}")
    with pytest.raises(RuntimeError, match="failed"):
        attempt(store, run_dir)()
    [record] = store.attempts_of(run_id)
    assert record.failure_kind is FailureKind.KILLED and "SIGKILL" in record.failure_reason


def test_checkpoint_stops_worker_and_requeue_takes_next_attempt(tmp_path, monkeypatch):
    monkeypatch.setattr(slurm_task, "CANCELLED_WAIT_S", 0.1)
    store, run_id, run_dir = prepared_run(tmp_path, "{steps: 400, sleep_per_step: 0.02}")
    task = attempt(store, run_dir)
    thread, errors = start_task_until_progress(task, run_dir)
    delayed = task.checkpoint()  # what submitit calls on USR2
    thread.join(30)
    assert errors and "cancelled" in str(errors[0])
    [cancelled] = store.attempts_of(run_id)
    assert cancelled.status is AttemptStatus.CANCELLED
    requeued = pickle.loads(pickle.dumps(delayed.function))
    assert requeued._proc is None
    started = time.monotonic()
    out = requeued()
    assert out["attempt"] == 2 and time.monotonic() - started < 30
    success = store.attempts_of(run_id)[-1]
    assert success.status is AttemptStatus.SUCCESS and success.metrics["steps_run"] < 400


def test_detached_sweep_skips_done_and_live_runs(tmp_path, monkeypatch):
    store = ResultsStore(tmp_path / "runs")
    sweep = write_sweep(tmp_path, "sub", "base: {job: quick-fit}\nseeds: [0, 1, 2]\n")
    ids = [r.spec.run_id for r in sweep.runs]
    submitted: list = []

    def fake_submit(self, requests):
        submitted.append([(r.run_id, r.attempt) for r in requests])
        jobs = [f"77_{i}" for i in range(len(requests))]
        for r, job in zip(requests, jobs, strict=True):
            (r.run_dir / SLURM_JOB_FILE).write_text(f'{{"job_id": "{job}", "attempt": 1}}')
        return jobs

    monkeypatch.setattr(SlurmExecutor, "submit_arrays", fake_submit)
    monkeypatch.setattr(slurm_mod, "query_job_states", lambda jobs: dict.fromkeys(jobs, "PENDING"))
    monkeypatch.setattr(slurm_executor_mod, "slurm_available", lambda: None)  # no cluster needed
    executor = make_executor(profile(), store)
    attempt(store, write_one(store, sweep, 0))()  # seed 0 is done already
    first = run_sweep(
        sweep, executor=executor, store=store, install_signal_handlers=False, detach=True
    )
    assert submitted == [[(ids[1], 1), (ids[2], 1)]] and first.exit_code == 0
    assert (store.layout.run_dir("sub", ids[1]) / "spec.json").is_file()
    second = run_sweep(
        sweep, executor=executor, store=store, install_signal_handlers=False, detach=True
    )
    assert len(submitted) == 1, "pending jobs are not submitted twice"
    assert second.exit_code == 0


def write_one(store, sweep, index):
    run = sweep.runs[index]
    run_dir = store.layout.run_dir(sweep.name, run.spec.run_id)
    write_run_files(run_dir, run.spec.to_json(), sweep=sweep.name, axes={})
    return run_dir


def test_lost_tasks_are_recorded_once_slurm_says_they_ended(tmp_path, monkeypatch):
    store, run_id, run_dir = prepared_run(tmp_path, "{steps: 5}")
    (run_dir / SLURM_JOB_FILE).write_text('{"job_id": "9_0", "attempt": 1}')
    monkeypatch.setattr(slurm_mod, "query_job_states", lambda jobs: {"9_0": "RUNNING"})
    assert slurm_mod.record_lost_slurm_attempts(store, "unit") == []
    monkeypatch.setattr(slurm_mod, "query_job_states", lambda jobs: {"9_0": "NODE_FAIL"})
    [record] = slurm_mod.record_lost_slurm_attempts(store, "unit")
    assert record.status is AttemptStatus.FAILED and "NODE_FAIL" in record.failure_reason
    assert slurm_mod.record_lost_slurm_attempts(store, "unit") == [], "recorded once"


def test_task_leaves_a_run_held_elsewhere_alone(tmp_path, monkeypatch):
    from ablate.execution.claims import try_claim

    store, run_id, run_dir = prepared_run(tmp_path, "{steps: 5}")
    claim = try_claim(store.layout, run_id, sweep="other")
    try:
        with pytest.raises(RuntimeError, match="is being run by pid"):
            attempt(store, run_dir)()
    finally:
        claim.release()
    assert store.attempts_of(run_id) == []
    monkeypatch.setattr(slurm_mod, "query_job_states", lambda jobs: dict.fromkeys(jobs, "FAILED"))
    assert slurm_mod.record_lost_slurm_attempts(store, "unit") == [], "not a lost attempt"


def test_states_come_from_squeue_then_scontrol_and_unreachable_records_nothing(
    tmp_path, monkeypatch
):
    import subprocess

    calls = []

    def fake_run(command):
        calls.append(command[0])
        if command[0] == "squeue":
            return subprocess.CompletedProcess(command, 0, "5_1 RUNNING\n", "")
        if command[0] == "scontrol":
            line = "JobId=8 ArrayJobId=5 ArrayTaskId=0 JobState=FAILED Reason=NonZeroExitCode"
            return subprocess.CompletedProcess(command, 0, line + "\n", "")
        return subprocess.CompletedProcess(command, 1, "", "accounting disabled")

    monkeypatch.setattr(slurm_mod, "_run", fake_run)
    states = slurm_mod.query_job_states(["5_0", "5_1", "5_2"])
    assert states == {"5_0": "FAILED", "5_1": "RUNNING", "5_2": "UNKNOWN"}
    assert calls == ["squeue", "scontrol", "sacct"], "one call per kind, not one per run"

    store, run_id, run_dir = prepared_run(tmp_path, "{steps: 5}")
    (run_dir / SLURM_JOB_FILE).write_text('{"job_id": "5_0", "attempt": 1}')
    monkeypatch.setattr(slurm_mod, "_run", lambda command: None)  # squeue hangs or is missing
    assert slurm_mod.slurm_run_states(store, "unit")[run_id]["state"] == "UNREACHABLE"
    assert slurm_mod.record_lost_slurm_attempts(store, "unit") == []


def test_worker_threads_follow_the_tasks_cpus(tmp_path, monkeypatch):
    store, run_id, run_dir = prepared_run(tmp_path, "{steps: 5}")
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "3")
    monkeypatch.setenv("OMP_NUM_THREADS", "64")  # the login node's, exported by sbatch
    env = attempt(store, run_dir).worker_env()
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "3"
    pinned = SlurmAttempt(
        run_dir,
        1,
        runs_root=store.root,
        env={"OMP_NUM_THREADS": "1"},
        python=sys.executable,
        grace_s=10,
    )
    assert pinned.worker_env()["OMP_NUM_THREADS"] == "1", "the profile's env wins"


def test_attached_task_runs_under_the_orchestrators_claim_and_is_not_requeued(tmp_path):
    """``ablate tune`` on SLURM: the orchestrator holds the claim; a preemption is not requeued."""
    from ablate.execution.claims import try_claim

    store, run_id, run_dir = prepared_run(tmp_path, "{steps: 400, sleep_per_step: 0.02}")
    claim = try_claim(store.layout, run_id, sweep="unit")  # held by the waiting orchestrator
    try:
        task = attempt(store, run_dir, 2, attached=True)  # exactly the attempt it was given
        thread, errors = start_task_until_progress(task, run_dir)
        assert task.checkpoint() is None, "attached: no requeue, the orchestrator decides"
        thread.join(30)
    finally:
        claim.release()
    assert errors and "attempt 2 cancelled" in str(errors[0])
    [record] = store.attempts_of(run_id)
    assert record.attempt == 2 and record.status is AttemptStatus.CANCELLED
