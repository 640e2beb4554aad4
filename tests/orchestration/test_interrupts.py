"""Ctrl-C, SIGTERM and SIGKILL on the orchestrator process; the rerun resumes.

The orchestrator runs in its own process (``drive_sweep.py``, what ``ablate sweep`` does), so the
signals and the kill are real.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sweep_helpers import (  # noqa: F401 (fixtures used by name)
    DRIVER,
    runs_fixture,
    store_fixture,
    sweep_file,
    worker_can_import_quick_job,
)

from ablate.execution.claims import held_claims
from ablate.orchestrate.lock import sweep_lock_holder
from ablate.spec.sweep import load_sweep
from ablate.store import ResultsStore


def start_driver(path: Path, runs: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(DRIVER), str(path), str(runs), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for_running(runs: Path, sweep: str, count: int, timeout: float = 60) -> None:
    """Until ``count`` runs of ``sweep`` have reported progress (their jobs are mid-run)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if len(list((runs / sweep).glob("*/progress.json"))) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"{count} runs never started under {runs / sweep}")


def quick_file(tmp_path: Path, name: str, *, seeds: int, **fit) -> Path:
    lines = "".join(
        f"    {k}: {str(v).lower() if isinstance(v, bool) else v}\n" for k, v in fit.items()
    )
    body = f"base:\n  job: quick-fit\n  fit:\n{lines}seeds: {list(range(seeds))}\n"
    return sweep_file(tmp_path, name, body)


def assert_clean(runs: Path) -> None:
    """Nothing half-written remains and nobody holds a claim."""
    store = ResultsStore(runs)
    assert not list(store.layout.records_dir.glob(".*.tmp"))
    assert held_claims(store.layout) == {}


def assert_one_success_each(runs: Path, sweep_path: Path) -> list:
    records = ResultsStore(runs).records()
    successes = Counter(r.run_id for r in records if r.status.value == "success")
    expected = {run.spec.run_id for run in load_sweep(sweep_path).runs}
    assert set(successes) == expected
    assert set(successes.values()) == {1}, successes
    attempts = Counter((r.run_id, r.attempt) for r in records)
    assert set(attempts.values()) == {1}, attempts  # one record per attempt, never two
    return records


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_records_cancelled_and_rerun_completes(tmp_path, sig):
    runs = tmp_path / "runs"
    path = quick_file(tmp_path, "intr", seeds=3, steps=40, sleep_per_step=0.05)
    proc = start_driver(path, runs, "--slots", "2")
    wait_for_running(runs, "intr", 2)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "stopping" in out
    records = ResultsStore(runs).records()
    assert [r.status.value for r in records] == ["cancelled", "cancelled"], out
    assert all("stopped at step" in r.failure_reason for r in records)
    assert_clean(runs)
    assert sweep_lock_holder(ResultsStore(runs).layout, "intr") is None

    rerun = subprocess.run(
        [sys.executable, str(DRIVER), str(path), str(runs)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rerun.returncode == 0, rerun.stdout
    records = assert_one_success_each(runs, path)
    resumed = [r for r in records if r.status.value == "success" and r.attempt == 2]
    assert len(resumed) == 2
    assert all(r.metrics["steps_run"] < 40 for r in resumed)  # continued from the checkpoint
    assert_clean(runs)


def test_interrupt_kills_jobs_that_ignore_it_after_the_grace_period(tmp_path):
    runs = tmp_path / "runs"
    path = quick_file(tmp_path, "deaf", seeds=1, steps=400, sleep_per_step=0.05, ignore_stop=True)
    proc = start_driver(path, runs, "--grace", "1")
    wait_for_running(runs, "deaf", 1)
    started = time.time()
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert time.time() - started < 10
    (record,) = ResultsStore(runs).records()
    assert record.status.value == "cancelled"
    assert "stopped by the orchestrator (SIGINT)" in record.failure_reason
    assert "SIGKILL" in record.failure_reason
    assert_clean(runs)


def test_killed_orchestrator_leaves_no_orphans_and_rerun_completes(tmp_path):
    runs = tmp_path / "runs"
    path = sweep_file(
        tmp_path,
        "lin",
        """
        base:
          job: linear-fit
          train: {steps: 150, checkpoint_every: 20}
          debug: {sleep_per_step: 0.02}
        seeds: [0, 1, 2]
        """,
    )
    proc = start_driver(path, runs, "--slots", "3")
    wait_for_running(runs, "lin", 3, timeout=120)

    second = subprocess.run(
        [sys.executable, str(DRIVER), str(path), str(runs)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 3
    assert f"sweep 'lin' is already running (pid {proc.pid}" in second.stdout

    workers = [
        int(line.split(" pid ")[1].split()[0])
        for log in (runs / "lin").glob("*/worker.log")
        for line in log.read_text().splitlines()
        if line.startswith("[ablate worker]") and " pid " in line
    ]
    assert len(workers) == 3
    proc.kill()
    proc.communicate(timeout=30)
    rerun = subprocess.run(
        [sys.executable, str(DRIVER), str(path), str(runs), "--slots", "3"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert rerun.returncode == 0, rerun.stdout
    for pid in workers:  # the killed orchestrator's workers went down with it
        assert (
            not os.path.exists(f"/proc/{pid}")
            or "zombie" in Path(f"/proc/{pid}/status").read_text()
        )
    records = assert_one_success_each(runs, path)
    assert {r.status.value for r in records} <= {"success", "cancelled"}
    assert_clean(runs)


def test_two_sweeps_sharing_runs_run_each_once(tmp_path):
    runs = tmp_path / "runs"
    one = quick_file(tmp_path, "one", seeds=4, steps=20, sleep_per_step=0.05)
    two = sweep_file(
        tmp_path,
        "two",
        "base:\n  job: quick-fit\n  fit:\n    steps: 20\n    sleep_per_step: 0.05\n"
        "seeds: [2, 3, 1, 0, 4]\n",
    )
    first = start_driver(one, runs, "--slots", "2")
    second = start_driver(two, runs, "--slots", "2")
    out_one, _ = first.communicate(timeout=120)
    out_two, _ = second.communicate(timeout=120)
    assert first.returncode == 0, out_one
    assert second.returncode == 0, out_two
    records = ResultsStore(runs).records()
    successes = Counter(r.run_id for r in records if r.status.value == "success")
    assert len(successes) == 5 and set(successes.values()) == {1}, successes
    assert len(records) == 5  # nobody ran a run another sweep was running or had done
    assert_clean(runs)
