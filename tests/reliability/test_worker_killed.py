"""A worker killed mid-epoch (SIGKILL from outside, as the OOM killer does): the attempt is
recorded failed with its reason, and the retry resumes from the last checkpoint.

The whole thing runs through ``ablate sweep`` with the local runner (one worker process per run);
the test finds the worker's pid in its ``worker.log`` once a checkpoint exists and kills it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

from reliability_helpers import assert_records_all_verify, cli_env, linear_sweep_file

from ablate.spec.sweep import load_sweep
from ablate.store import ResultsStore
from ablate.store.record import AttemptStatus, FailureKind


def test_worker_killed_mid_run_is_recorded_and_the_retry_resumes(tmp_path):
    path = linear_sweep_file(
        tmp_path, "wk", train={"steps": 200, "checkpoint_every": 20}, debug={"sleep_per_step": 0.02}
    )
    run_id = load_sweep(path).runs[0].spec.run_id
    runs = tmp_path / "runs"
    run_dir = runs / "wk" / run_id
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ablate.cli",
            "sweep",
            str(path),
            "--runs-dir",
            str(runs),
            "--runner",
            "cpu",
            "--retries",
            "1",
            "-q",
            "--no-tracking",
        ],
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.time() + 90
        while not (run_dir / "checkpoint.pt").exists() and time.time() < deadline:
            time.sleep(0.05)
        assert (run_dir / "checkpoint.pt").exists(), "no checkpoint was written"
        pid = int(re.search(r"attempt 1 pid (\d+)", (run_dir / "worker.log").read_text())[1])
        os.kill(pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    killed, retried = sorted(ResultsStore(runs).attempts_of(run_id), key=lambda r: r.attempt)
    assert killed.status is AttemptStatus.FAILED and killed.failure_kind is FailureKind.KILLED
    assert "signal SIGKILL" in killed.failure_reason
    assert "--- log tail ---" in killed.failure_reason
    assert retried.status is AttemptStatus.SUCCESS and retried.attempt == 2
    assert 0 < retried.metrics["train/steps_run"] < 200  # resumed, not started over
    assert_records_all_verify(runs)
