"""The runner's ``timeout_s`` holds inline too: the job is asked to stop, recorded failed: timeout.

The inline executor runs the job in the orchestrator's thread, so nothing can interrupt it from
outside; it raises the job's stop flag once the time is up instead, and the attempt is recorded
exactly as a local worker stopped for its timeout (failed, ``timeout``, retry budget spent). The
retry resumes from the checkpoint the stopped attempt wrote.
"""

from __future__ import annotations

import pytest
from reliability_helpers import linear_sweep_file

from ablate.execution.registry import make_executor
from ablate.execution.runner_profile import parse_runner_profile
from ablate.orchestrate.orchestrator import run_sweep
from ablate.spec.sweep import load_sweep
from ablate.store import ResultsStore
from ablate.store.record import AttemptStatus, FailureKind

pytestmark = pytest.mark.usefixtures("no_git")  # tests/conftest.py


def test_inline_attempt_past_its_timeout_is_stopped_and_recorded_timeout(tmp_path):
    import re

    import torch  # noqa: F401 - imported before the clock starts (seconds on a cold start)

    path = linear_sweep_file(
        tmp_path, "slow", train={"steps": 200}, debug={"sleep_per_step": 0.05}
    )  # 10 s of steps against a 2 s timeout
    store = ResultsStore(tmp_path / "runs")
    profile = parse_runner_profile(
        {"executor": "inline", "timeout_s": 2.0}, name="t", source="t.yaml"
    )
    executor = make_executor(profile, store)
    sweep = load_sweep(path)
    result = run_sweep(
        sweep, executor=executor, store=store, retries=0, install_signal_handlers=False
    )
    [record] = store.attempts_of(sweep.runs[0].spec.run_id)
    assert record.status is AttemptStatus.FAILED and record.failure_kind is FailureKind.TIMEOUT
    assert "timeout" in record.failure_reason
    stopped_at = int(re.search(r"stopped at step (\d+)", record.failure_reason).group(1))
    assert 0 < stopped_at < 200
    assert result.exit_code == 1, "the retry budget (0) is spent"

    executor.timeout_s = None  # the retry has all the time it needs and resumes
    again = run_sweep(
        sweep, executor=executor, store=store, retries=1, install_signal_handlers=False
    )
    assert again.exit_code == 0
    done = store.attempts_of(sweep.runs[0].spec.run_id)[-1]
    assert done.status is AttemptStatus.SUCCESS
    assert done.metrics["train/steps_run"] == 200 - stopped_at, "resumed from its checkpoint"
