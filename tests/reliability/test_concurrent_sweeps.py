"""Two ``ablate sweep`` processes on the same sweep: one runs, the other refuses and names it.

The lock is an ``flock``: when its holder dies (SIGKILL, no cleanup) the kernel releases it and
the next ``ablate sweep`` runs. (In-process variants: ``tests/orchestration/test_inline_sweeps.py::
test_second_orchestrator_on_the_same_sweep_is_refused`` and ``tests/orchestration/
test_progress_and_claims.py::test_sweep_lock_is_released_when_its_holder_dies``.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from reliability_helpers import cli_env, linear_sweep_file, run_cli, success_counts

from ablate.orchestrate.lock import sweep_lock_holder
from ablate.store.layout import RunsLayout


def test_second_cli_sweep_refuses_naming_the_first_then_runs_after_it_dies(tmp_path):
    path = linear_sweep_file(
        tmp_path, "twice", seeds=(0, 1), train={"steps": 100}, debug={"sleep_per_step": 0.03}
    )
    runs = tmp_path / "runs"
    args = [
        "sweep",
        str(path),
        "--runs-dir",
        str(runs),
        "--runner",
        "inline",
        "-q",
        "--no-tracking",
    ]
    first = subprocess.Popen(
        [sys.executable, "-m", "ablate.cli", *args],
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 60
        while sweep_lock_holder(RunsLayout(runs), "twice") is None and time.time() < deadline:
            time.sleep(0.05)
        second = run_cli(*args, cwd=tmp_path)
        assert second.returncode != 0
        assert "Traceback" not in second.stderr
        assert "already running" in second.stderr and f"pid {first.pid}" in second.stderr
        os.kill(first.pid, signal.SIGKILL)  # the holder dies without releasing anything
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    third = run_cli(*args, cwd=tmp_path)
    assert third.returncode == 0, third.stderr
    assert set(success_counts(runs).values()) == {1} and len(success_counts(runs)) == 2
