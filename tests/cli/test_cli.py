"""The CLI as a user meets it: help, plans, errors without tracebacks, resume, status."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ablate_cli import run_ablate

REPO = Path(__file__).resolve().parents[2]

SWEEP = """
name: clidemo
base: {job: linear-fit, train: {steps: 5}}
grid: {train.lr: [0.01, 0.02]}
"""


def ablate(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_ablate(*args, cwd=cwd, pythonpath=[])


def test_help_lists_commands_with_examples(tmp_path):
    out = ablate("--help", cwd=tmp_path)
    assert out.returncode == 0
    for command in ("sweep", "status", "runs", "plan", "score"):
        assert command in out.stdout
    assert "ablate sweep sweeps/table3.yaml --scale tiny" in out.stdout
    sweep_help = ablate("sweep", "--help", cwd=tmp_path)
    assert "--dry-run" in sweep_help.stdout and "Examples:" in sweep_help.stdout


def test_bad_sweep_is_one_line_error_exit_2(write, tmp_path):
    path = write("bad.yaml", "base: {job: linear-fit, train: {stepz: 3}}\n")
    out = ablate("sweep", str(path), "--dry-run", cwd=tmp_path)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "bad.yaml:1: train.stepz: unknown key 'stepz' (did you mean 'steps'?)" in out.stderr
    assert not (tmp_path / "runs").exists()


def test_unknown_runner_profile_names_the_choices(write, tmp_path):
    path = write("s.yaml", SWEEP)
    out = ablate("sweep", str(path), "--runner", "gpu-farm", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "runner profile not found" in out.stderr and "local" in out.stderr


def test_dry_run_plans_and_runs_nothing(write, tmp_path):
    path = write("s.yaml", SWEEP)
    out = ablate("sweep", str(path), "--dry-run", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "2 runs: 2 new; 2 to dispatch" in out.stdout
    assert not (tmp_path / "runs" / ".store").exists()


def test_sweep_then_rerun_skips_done_and_status_reports(write, tmp_path):
    path = write("s.yaml", SWEEP)
    first = ablate("sweep", str(path), "--runner", "inline", cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "2 succeeded" in first.stdout
    again = ablate("sweep", str(path), "--runner", "inline", cwd=tmp_path)
    assert again.returncode == 0
    assert "2 runs: 2 done; 0 to dispatch" in again.stdout
    status = ablate("status", str(path), cwd=tmp_path)
    assert status.stdout.count(" done ") >= 2
    runs = ablate("runs", cwd=tmp_path)
    assert runs.stdout.count("success") == 2 and "eval/r2=" in runs.stdout


def test_failed_run_is_retried_then_reported(write, tmp_path):
    path = write(
        "s.yaml",
        """
        name: flaky
        base: {job: linear-fit, train: {steps: 5}, debug: {fail_at_step: 2, fail_attempts: 5}}
    """,
    )
    out = ablate("sweep", str(path), "--runner", "inline", "--retries", "1", cwd=tmp_path)
    assert out.returncode == 1
    status = ablate("status", str(path), "--retries", "1", cwd=tmp_path)
    assert "exhausted" in status.stdout
    assert "injected failure at step 2" in status.stdout


def test_repo_sweeps_dry_run_at_tiny_scale(tmp_path):
    out = ablate(
        "sweep", str(REPO / "sweeps/table3.yaml"), "--scale", "tiny", "--dry-run", cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert "11 runs: 11 new; 11 to dispatch" in out.stdout


def test_status_reattaches_to_a_detached_slurm_sweep(write, tmp_path, monkeypatch):
    """`ablate status` asks SLURM about a submitted sweep's jobs and records lost attempts."""
    from typer.testing import CliRunner

    import ablate.execution.slurm.watch as slurm
    from ablate.cli import app
    from ablate.spec.sweep import load_sweep

    path = write("s.yaml", SWEEP)
    run_id = load_sweep(path).runs[0].spec.run_id
    run_dir = tmp_path / "runs" / "clidemo" / run_id
    run_dir.mkdir(parents=True)
    (run_dir / "slurm.json").write_text('{"job_id": "71_0", "attempt": 1}')
    asked = []
    monkeypatch.setattr(
        slurm,
        "slurm_run_states",
        lambda store, name: {run_id: {"job_id": "71_0", "attempt": 1, "state": "PENDING"}},
    )
    monkeypatch.setattr(
        slurm,
        "record_lost_slurm_attempts",
        lambda store, name, states: asked.append((name, states)) or [],
    )
    result = CliRunner().invoke(app, ["status", str(path), "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    assert "71_0 pending" in result.output
    assert "2 runs: 1 new, 1 pending; 1 to dispatch" in result.output, "queued, not new"
    assert asked and asked[0][0] == "clidemo" and run_id in asked[0][1]


def test_slurm_sweep_records_lost_jobs_before_planning(write, tmp_path, monkeypatch):
    """A rerun of a SLURM sweep first records jobs that died without a record (budget counts)."""
    from typer.testing import CliRunner

    import ablate.execution.slurm.watch as slurm
    from ablate.cli import app
    from ablate.spec.sweep import load_sweep
    from ablate.store.run_folder import write_run_files

    path = write("s.yaml", SWEEP)
    run = load_sweep(path).runs[0]
    run_dir = tmp_path / "runs" / "clidemo" / run.spec.run_id
    write_run_files(run_dir, run.spec.to_json(), sweep="clidemo", axes={})
    (run_dir / "slurm.json").write_text('{"job_id": "72_0", "attempt": 1}')
    monkeypatch.setattr(slurm, "query_job_states", lambda jobs: {"72_0": "NODE_FAIL"})
    monkeypatch.setattr(slurm, "slurm_available", lambda: None)
    result = CliRunner().invoke(
        app,
        [
            "sweep",
            str(path),
            "--runner",
            "slurm",
            "--dry-run",
            "--runs-dir",
            str(tmp_path / "runs"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "attempt 1: SLURM job ended without a record; recorded failed" in result.output
    assert "2 runs: 1 new, 1 failed; 2 to dispatch" in result.output
    assert "72_0 node_fail" in result.output


def test_status_of_a_local_sweep_never_calls_slurm(write, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import ablate.execution.slurm.watch as slurm
    from ablate.cli import app

    def boom(*args, **kwargs):
        raise AssertionError("SLURM asked about a local sweep")

    monkeypatch.setattr(slurm, "slurm_run_states", boom)
    path = write("s.yaml", SWEEP)
    result = CliRunner().invoke(app, ["status", str(path), "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    assert "SLURM jobs" not in result.output


def test_help_examples_keep_one_command_per_line():
    """Examples in --help must be copyable: click must not re-wrap them into one paragraph."""
    from typer.testing import CliRunner

    from ablate.cli import app

    for command, example in (
        ("sweep", "ablate sweep sweeps/table2.yaml --dry-run\n"),
        ("tune", "ablate tune sweeps/tune_ba.yaml --scale tiny --trials 6\n"),
    ):
        result = CliRunner().invoke(app, [command, "--help"], terminal_width=100)
        assert result.exit_code == 0
        assert example in result.output, result.output
        assert "\\b" not in result.output


def test_plan_shows_gpu_hours_per_run_and_for_the_sweep(tmp_path):
    """``ablate plan`` prices a table before it is launched: gpu_h per run and the sum."""
    out = ablate("plan", str(REPO / "sweeps" / "table3.yaml"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "gpu_h" in out.stdout
    line = next(x for x in out.stdout.splitlines() if x.startswith("estimated GPU-hours:"))
    total = float(line.split()[2])
    assert 5.0 < total < 100.0 and "for 11 runs" in line  # ~1.8 GPU-hours a 7B-lite row
