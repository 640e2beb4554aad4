"""SIGKILL of ``ablate sweep`` at random points; the rerun completes and nothing is lost or doubled.

Each trial runs a small ``linear-fit`` sweep through the real CLI in a subprocess, kills it with
SIGKILL after a seeded random delay (while it imports, plans, trains, writes a record...), then
reruns the same command to completion. After every rerun:

- the sweep is complete: exit 0, every run id has exactly one verified success record;
- every ``*.json`` in the record folder verifies (a half-written record is a hidden ``.tmp``,
  never a result) and no claim or lock is left held;
- with tracking on (a sqlite MLflow store), each run id has exactly one MLflow child run.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from reliability_helpers import (
    assert_records_all_verify,
    cli_env,
    linear_sweep_file,
    run_cli,
    success_counts,
)

from ablate.execution.claims import held_claims
from ablate.orchestrate.lock import sweep_lock_holder
from ablate.spec.sweep import load_sweep
from ablate.store import ResultsStore

SEEDS = (0, 1, 2, 3)


def _kill_then_rerun(
    tmp_path: Path, trial: int, delay: float, runner: str, tracking: list[str]
) -> tuple[Path, int]:
    """One trial; returns the runs root and how many runs had succeeded when the kill came.

    The delay counts from the moment the sweep dispatched its first run (its folder appears), so
    the kill lands in training, checkpointing or record writing rather than in Python start-up.
    """
    path = linear_sweep_file(
        tmp_path,
        f"kill{trial}",
        seeds=SEEDS,
        train={"steps": 40, "checkpoint_every": 10},
        debug={"sleep_per_step": 0.02},
    )
    runs = tmp_path / f"runs{trial}"
    args = ["sweep", str(path), "--runs-dir", str(runs), "--runner", runner, "-q", *tracking]
    proc = subprocess.Popen(
        [sys.executable, "-m", "ablate.cli", *args],
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 60
    while not (runs / f"kill{trial}").exists() and time.time() < deadline:
        time.sleep(0.02)
    assert (runs / f"kill{trial}").exists(), "the sweep never dispatched"
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    time.sleep(0.2)  # workers get SIGTERM from the kernel (PDEATHSIG) and record themselves
    before = len(success_counts(runs)) if runs.exists() else 0
    done = run_cli(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    sweep = load_sweep(path)
    expected = {r.spec.run_id for r in sweep.runs}
    counts = success_counts(runs)
    assert set(counts) == expected, (delay, counts)
    assert set(counts.values()) == {1}, (delay, counts)
    assert_records_all_verify(runs)
    store = ResultsStore(runs)
    assert held_claims(store.layout) == {}
    assert sweep_lock_holder(store.layout, sweep.name) is None
    return runs, before


def _delays(n: int, seed: int, high: float) -> list[float]:
    rng = random.Random(seed)
    return [round(rng.uniform(0.0, high), 2) for _ in range(n)]


def test_sigkill_mid_sweep_then_rerun_completes(tmp_path):
    _, before = _kill_then_rerun(tmp_path, 0, 1.2, "inline", ["--no-tracking"])
    assert before < len(SEEDS)


@pytest.mark.slow
def test_sigkill_at_ten_random_points(tmp_path):
    """Ten seeded random kill times, alternating the inline and local (worker process) runners.

    The delays span start-up, planning, training, record writing and the end of the sweep; the
    test checks that most kills really landed before the sweep was complete.
    """
    mid_sweep = 0
    for trial, delay in enumerate(_delays(10, seed=2026, high=6.0)):
        runner = "cpu" if trial % 2 else "inline"
        _, before = _kill_then_rerun(tmp_path, trial, delay, runner, ["--no-tracking"])
        mid_sweep += before < len(SEEDS)
    assert mid_sweep >= 5, f"only {mid_sweep} of 10 kills landed mid-sweep"


@pytest.mark.parametrize("delay", [1.5])
def test_sigkill_with_mlflow_never_duplicates_child_runs(tmp_path, delay):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    runs, _ = _kill_then_rerun(tmp_path, 0, delay, "inline", ["--tracking-uri", uri])
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("kill0")
    assert exp is not None
    children = [
        r
        for r in client.search_runs([exp.experiment_id], max_results=200)
        if "ablate.run_id" in r.data.tags
    ]
    ids = [c.data.tags["ablate.run_id"] for c in children]
    assert sorted(ids) == sorted(set(ids)), f"duplicate MLflow child runs: {sorted(ids)}"
    assert set(ids) == set(success_counts(runs))
