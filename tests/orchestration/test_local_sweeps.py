"""Worker subprocesses: parallel slots, GPU leasing, dead workers, timeouts, stop requests."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

from sweep_helpers import (  # noqa: F401 (fixtures used by name)
    local_executor,
    quick_sweep,
    runs_fixture,
    store_fixture,
    worker_can_import_quick_job,
)

from ablate.execution.claims import held_claims
from ablate.execution.worker import EXIT_CANCELLED
from ablate.orchestrate.orchestrator import run_sweep
from ablate.store import AttemptStatus
from ablate.store.run_folder import write_run_files


def test_two_cpu_slots_run_two_jobs_at_once(tmp_path, store):
    sweep = quick_sweep(tmp_path, seeds=(0, 1), steps=10, sleep_per_step=0.15)
    result = run_sweep(sweep, executor=local_executor(store, cpu_slots=2), store=store)
    assert result.exit_code == 0
    first, second = sorted(store.records(), key=lambda r: r.started_at)
    assert second.started_at < first.ended_at  # the intervals overlap
    assert first.metrics["pid"] != second.metrics["pid"]
    assert {r.executor for r in (first, second)} == {"local"}
    assert {r.device for r in (first, second)} == {"cpu"}


def test_each_worker_sees_only_its_leased_gpu(tmp_path, store):
    sweep = quick_sweep(tmp_path, seeds=(0, 1, 2), steps=6, sleep_per_step=0.1)
    executor = local_executor(store, gpus=["3", "5"])
    assert run_sweep(sweep, executor=executor, store=store).exit_code == 0
    seen = []
    for run in sweep.runs:
        log = (store.layout.run_dir("quick", run.spec.run_id) / "worker.log").read_text()
        (visible,) = re.findall(r"CUDA_VISIBLE_DEVICES=(\S*)", log)
        assert re.search(r"device cuda", log)
        seen.append(visible)
    assert set(seen) <= {"3", "5"} and len(set(seen)) == 2
    intervals = sorted((r.started_at, r.ended_at, r.run_id) for r in store.records())
    by_run = dict(zip((r.spec.run_id for r in sweep.runs), seen, strict=True))
    for (_, e1, a), (s2, _, b) in zip(intervals, intervals[1:], strict=False):
        if s2 < e1:  # ran at the same time: never on the same GPU
            assert by_run[a] != by_run[b]


def test_worker_dying_without_a_record_gets_one_and_is_retried(tmp_path, store):
    sweep = quick_sweep(tmp_path, seeds=(0,), die_attempts=1)
    result = run_sweep(sweep, executor=local_executor(store), store=store, retries=1)
    failed, success = store.attempts_of(sweep.runs[0].spec.run_id)
    assert failed.status is AttemptStatus.FAILED and failed.failure_kind.value == "killed"
    assert "signal SIGKILL" in failed.failure_reason
    assert "===== attempt 1 in cpu:0 =====" in failed.failure_reason  # the log tail
    assert success.status is AttemptStatus.SUCCESS and success.attempt == 2
    assert result.exit_code == 0
    assert held_claims(store.layout) == {}


def test_timeout_stops_the_job_and_counts_as_failure(tmp_path, store):
    polite = quick_sweep(tmp_path, "polite", seeds=(0,), steps=200, sleep_per_step=0.05)
    stubborn = quick_sweep(
        tmp_path, "stubborn", seeds=(1,), steps=200, sleep_per_step=0.05, ignore_stop=True
    )
    for sweep in (polite, stubborn):
        result = run_sweep(
            sweep,
            executor=local_executor(store),
            store=store,
            retries=0,
            timeout_s=1.0,
            grace_s=0.5,
        )
        assert result.exit_code == 1
    (stopped,) = store.attempts_of(polite.runs[0].spec.run_id)
    (killed,) = store.attempts_of(stubborn.runs[0].spec.run_id)
    for record in (stopped, killed):
        assert record.status is AttemptStatus.FAILED and record.failure_kind.value == "timeout"
        assert record.duration_s < 10
    assert "stopped at step" in stopped.failure_reason  # the job checkpointed and left
    assert "signal SIGKILL" in killed.failure_reason  # killed after the grace period


def test_worker_alone_records_a_sigterm_as_cancelled(tmp_path, store):
    sweep = quick_sweep(tmp_path, seeds=(0,), steps=200, sleep_per_step=0.05)
    run = sweep.runs[0]
    run_dir = store.layout.run_dir("quick", run.spec.run_id)
    write_run_files(run_dir, run.spec.to_json(), sweep="quick", axes=run.axes)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ablate.execution.worker", str(run_dir), "--attempt", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.time() + 30
    while not (run_dir / "progress.json").exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == EXIT_CANCELLED, out
    (record,) = store.attempts_of(run.spec.run_id)
    assert record.status is AttemptStatus.CANCELLED
    assert record.axes == {"seed": 0} and record.sweep == "quick"
    assert "stopped at step" in record.failure_reason
    assert (run_dir / "state.json").exists()  # it checkpointed before leaving


def test_worker_usage_errors(tmp_path):
    missing = subprocess.run(
        [sys.executable, "-m", "ablate.execution.worker", str(tmp_path / "x"), "--attempt", "1"],
        capture_output=True,
        text=True,
        env=os.environ,
    )
    assert missing.returncode == 2 and "spec.json: not found" in missing.stderr


class RecordingTracker:
    """Collects the hook calls."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def on_sweep_start(self, sweep, plan) -> None:
        self.events.append(("sweep_start", sweep.name, len(plan.to_dispatch())))

    def on_attempt_start(self, run, attempt) -> dict[str, str]:
        self.events.append(("attempt_start", run.spec.run_id, attempt))
        return {}

    def on_attempt_end(self, run, record) -> None:
        self.events.append(("attempt_end", run.spec.run_id, record.status.value))

    def on_sweep_end(self, sweep, interrupted) -> None:
        self.events.append(("sweep_end", interrupted))


def test_tracker_hooks_and_worker_metrics_log(tmp_path, store):
    sweep = quick_sweep(tmp_path, seeds=(0,), steps=5)
    tracker = RecordingTracker()
    run_sweep(sweep, executor=local_executor(store), store=store, tracker=tracker)
    run_id = sweep.runs[0].spec.run_id
    assert tracker.events == [
        ("sweep_start", "quick", 1),
        ("attempt_start", run_id, 1),
        ("attempt_end", run_id, "success"),
        ("sweep_end", False),
    ]
    metrics_log = store.layout.run_dir("quick", run_id) / "metrics.jsonl"
    lines = metrics_log.read_text().splitlines()
    assert [json.loads(line).get("step") for line in lines] == [0, 1, 2, 3, 4]
