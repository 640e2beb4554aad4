"""``ablate tune --runner slurm``: each trial is its own SLURM job, polled, pruned and recorded.

The study is the one of ``tests/tune/test_tune_study.py`` (its search, four trials). Against the
real one-node SLURM of ``.ci/slurm-up`` (skipped with the reason without one). The
tuner stays attached: it reads each trial's per-step loss from the shared runs folder, prunes the
crafted slow learner (its job is cancelled and the run recorded cancelled) and samples the next
trial when one ends. Unit tests of the polling of attached jobs need no cluster.
"""

from __future__ import annotations

import subprocess
import sys

import optuna
import pytest
from slurm_helpers import job_env
from tune_helpers import PRUNING_SEARCH, tune_file

from ablate.execution.base import AttemptRequest
from ablate.execution.slurm import jobs as slurm_jobs
from ablate.execution.slurm.executor import SlurmExecutor, SlurmResources
from ablate.execution.slurm.watch import slurm_available
from ablate.store.record import AttemptStatus
from ablate.store.results_store import ResultsStore


@pytest.mark.slow
@pytest.mark.skipif(slurm_available() is not None, reason=f"no SLURM here ({slurm_available()})")
def test_tune_runs_trials_as_slurm_jobs_and_prunes_the_slow_one(tmp_path, monkeypatch):
    job_env(monkeypatch)
    path = tune_file(
        tmp_path, "slurmtune", search=PRUNING_SEARCH, base="  debug: {sleep_per_step: 0.1}\n"
    )
    (tmp_path / "runner.yaml").write_text(
        "executor: slurm\ngpus: none\ncpus: 1\nmem_gb: 1\ntime_min: 10\n"
    )
    runs = tmp_path / "runs"
    command = [sys.executable, "-m", "ablate.cli", "tune", str(path), "--trials", "4"]
    command += ["--runner", str(tmp_path / "runner.yaml"), "--runs-dir", str(runs)]
    command += ["--max-parallel", "1", "--no-tracking", "-q"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout + done.stderr
    study = optuna.load_study(study_name="slurmtune", storage=f"sqlite:///{runs / 'optuna.db'}")
    trials = study.get_trials()
    assert len(trials) == 4
    assert trials[2].params["train.lr"] == pytest.approx(0.0001)
    assert trials[2].state is optuna.trial.TrialState.PRUNED
    store = ResultsStore(runs)
    for trial in trials:
        [record] = store.attempts_of(trial.user_attrs["ablate.run_id"])
        assert record.executor == "slurm", trial.number
        if trial.state is optuna.trial.TrialState.COMPLETE:
            assert record.status is AttemptStatus.SUCCESS
            assert trial.value == pytest.approx(record.metrics["eval/mse"])
        else:
            assert record.status is AttemptStatus.CANCELLED


def test_attached_jobs_are_polled_together_and_at_most_every_poll_s(tmp_path, monkeypatch):
    asked: list[list[str]] = []
    states = {"5": "RUNNING", "6": "PENDING"}

    def fake_states(job_ids):
        asked.append(list(job_ids))
        return {j: states[j] for j in job_ids}

    monkeypatch.setattr(slurm_jobs, "query_job_states", fake_states)
    store = ResultsStore(tmp_path / "runs")
    executor = SlurmExecutor(SlurmResources(array_parallelism=3), runs_root=store.root)
    assert executor.capacity == 3 and executor.detachable
    handles = []
    for job_id in ("5", "6"):
        request = AttemptRequest(
            run_id=f"r{job_id}", sweep="s", attempt=1, run_dir=tmp_path / job_id
        )
        handles.append(slurm_jobs.SlurmJobHandle(request, job_id, executor.jobs))
    assert executor.free_slots() == 1
    assert [h.label for h in handles] == ["slurm:5", "slurm:6"]
    for _ in range(50):  # the loop polls every 0.1 s: SLURM is asked once per poll_s
        assert not any(h.done() for h in handles)
    assert asked == [["5", "6"]]
    assert handles[0].state == "RUNNING"
    states["5"] = "COMPLETED"
    executor.jobs.refresh_now()  # poll_s has passed
    assert handles[0].done() and not handles[1].done()
    assert handles[0].outcome().returncode == 0
    states["5"] = "FAILED"
    executor.jobs.refresh_now()
    assert handles[0].outcome().returncode == 1
    states["6"] = "UNREACHABLE"
    executor.jobs.refresh_now()
    assert not handles[1].done(), "SLURM not answering is not an ended job"
    executor.release(handles[0])
    assert executor.free_slots() == 2
