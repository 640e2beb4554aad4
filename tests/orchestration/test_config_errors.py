"""Config errors (the spec's fault) are never retried and never spend the retry budget."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ablate_cli import run_ablate

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def ablate(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_ablate(*args, cwd=cwd, env={"ABLATE_JOB_MODULES": "quick_job"}, pythonpath=[HERE])


def test_a_config_error_is_not_retried_and_runs_after_the_fix(write, tmp_path):
    data = tmp_path / "data.txt"
    sweep = write(
        "needs.yaml",
        f"""
        base: {{job: quick-fit, fit: {{steps: 4, needs_file: {data}}}}}
        grid: {{fit.lr: [0.1, 0.2]}}
        """,
    )
    for _ in range(3):  # three sweeps with --retries 0: never exhausted, never retried in one
        out = ablate("sweep", str(sweep), "--runner", "inline", "--retries", "0", cwd=tmp_path)
        assert out.returncode == 1, out.stdout + out.stderr
        assert "2 to dispatch" in out.stdout
        assert "exhausted" not in out.stdout + out.stderr
        assert "0 succeeded, 2 did not" in out.stdout
        assert "a config error (the spec's fault): not retried" in out.stdout
    status = ablate("status", str(sweep), "--retries", "0", cwd=tmp_path)
    assert "2 runs: 2 failed; 2 to dispatch" in status.stdout
    assert "config ConfigError: fit.needs_file=" in status.stdout
    data.write_text("here now")
    fixed = ablate("sweep", str(sweep), "--runner", "inline", "--retries", "0", cwd=tmp_path)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "2 succeeded" in fixed.stdout


def test_an_exhausted_plan_names_the_flag_that_reruns_it(write, tmp_path):
    sweep = write("flaky.yaml", "base: {job: quick-fit, fit: {steps: 4, fail_attempts: 9}}\n")
    first = ablate("sweep", str(sweep), "--runner", "inline", "--retries", "1", cwd=tmp_path)
    assert first.returncode == 1
    again = ablate("sweep", str(sweep), "--runner", "inline", "--retries", "1", cwd=tmp_path)
    assert "1 runs: 1 exhausted; 0 to dispatch" in again.stdout
    assert (
        "1 run(s) exhausted their retry budget (--retries 1 allows 2 failed attempt(s)); rerun "
        "them with --retries 2 (one more attempt each) or --force" in again.stderr
    )
    more = ablate("sweep", str(sweep), "--runner", "inline", "--retries", "2", cwd=tmp_path)
    assert "1 to dispatch" in more.stdout
