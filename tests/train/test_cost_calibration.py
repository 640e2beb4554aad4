"""The plan's GPU-hours: the FLOP model, calibrated by earlier runs of the same model and GPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ablate.spec.sweep import PlannedRun, load_sweep
from ablate.store.record import AttemptRecord, AttemptStatus, FailureKind
from ablate.store.results_store import ResultsStore
from ablate.train.calibration import flop_model_hours, load_calibration
from ablate.train.cost import measured_hours

REPO = Path(__file__).resolve().parents[2]
H200 = "NVIDIA H200"


@pytest.fixture(scope="module")
def runs() -> list[PlannedRun]:
    """Table 3 on tiny twins: rows 4-11 share one model shape, rows 1-3 have their own."""
    return load_sweep(REPO / "sweeps/table3.yaml", scale="tiny").runs


def write(
    root: Path,
    run: PlannedRun,
    ratio: float,
    device: str = H200,
    *,
    attempt: int = 1,
    failed: bool = False,
) -> None:
    """A record of ``run`` that took ``ratio`` x its FLOP-model hours (90% training)."""
    seconds = ratio * flop_model_hours(run.spec.config) * 3600
    status = AttemptStatus.FAILED if failed else AttemptStatus.SUCCESS
    ResultsStore(root).write(
        AttemptRecord(
            run_id=run.spec.run_id,
            sweep="table3",
            attempt=attempt,
            status=status,
            failure_kind=FailureKind.ERROR if failed else None,
            job="mmt",
            spec=run.spec.to_dict(),
            metrics={"time/train_s": 0.9 * seconds, "time/eval_s": 0.1 * seconds},
            started_at=0.0,
            ended_at=seconds + 600.0,  # model loading is not counted
            device=device,
        )
    )


def test_no_records_keeps_the_flop_model(tmp_path, runs):
    calibration = load_calibration(tmp_path / "runs")
    hours, used = calibration.estimate(runs[10].spec)
    assert used is None and hours == flop_model_hours(runs[10].spec.config)
    [total] = calibration.summary([hours], 0)
    assert total.startswith("estimated GPU-hours: ") and "one H100 at 35% MFU, FLOP model" in total


def test_records_of_the_same_shape_and_gpu_scale_the_estimate(tmp_path, runs):
    root = tmp_path / "runs"
    write(root, runs[3], 2.0)  # row 4
    write(root, runs[4], 4.0)  # row 5
    write(root, runs[5], 50.0, failed=True)  # a failure measures nothing
    calibration = load_calibration(root)
    hours, used = calibration.estimate(runs[10].spec)  # row 11: same shape, another adapter
    assert (
        used is not None
        and used.device == H200
        and sorted(used.ratios) == pytest.approx([2.0, 4.0])
    )
    assert hours == pytest.approx(3.0 * flop_model_hours(runs[10].spec.config))  # the median
    assert calibration.estimate(runs[0].spec)[1] is None  # row 1: another LLM and ViT
    lines = calibration.summary([hours, 1.0], 1)
    assert lines[0] == (
        "gpu_h of tiny-llama2 + tiny-diht (fp16, quantisation nf4) calibrated from 2 run(s) on "
        "NVIDIA H200: measured / FLOP model, median x3.00"
    )
    assert "1 calibrated from earlier runs on NVIDIA H200, 1 from the FLOP model" in lines[1]


def test_gpu_choice_by_name_or_by_most_runs(tmp_path, runs):
    root = tmp_path / "runs"
    write(root, runs[3], 2.0)
    write(root, runs[4], 2.0)
    write(root, runs[5], 10.0, device="NVIDIA A100-SXM4-80GB")
    flop = flop_model_hours(runs[10].spec.config)
    assert load_calibration(root).estimate(runs[10].spec)[0] == pytest.approx(2.0 * flop)
    by_name = load_calibration(root, gpu="a100").estimate(runs[10].spec)
    assert by_name[0] == pytest.approx(10.0 * flop) and by_name[1].device.startswith("NVIDIA A100")
    assert load_calibration(root, gpu="L40S").estimate(runs[10].spec) == (flop, None)


def test_a_store_without_successes_is_read_from_the_summary_index_only(tmp_path, runs, monkeypatch):
    root = tmp_path / "runs"
    write(root, runs[3], 2.0, failed=True)

    def refuse(*_args, **_kwargs):
        raise AssertionError("the parquet index was read")

    monkeypatch.setattr(ResultsStore, "index_table", refuse)
    assert load_calibration(root).found == {}


def test_other_jobs_and_records_without_a_device_are_not_priced(tmp_path, runs):
    root = tmp_path / "runs"
    write(root, runs[3], 2.0, device="")
    ResultsStore(root).write(
        AttemptRecord(
            run_id="abc123abc123",
            sweep="demo",
            attempt=1,
            status=AttemptStatus.SUCCESS,
            job="linear-fit",
            metrics={"time/total_s": 60.0},
            device=H200,
        )
    )
    assert load_calibration(root).found == {}


def test_measured_hours_are_training_plus_evaluation():
    assert measured_hours({"time/train_s": 3000.0, "time/eval_s": 600.0}, 9999.0) == 1.0
    assert measured_hours({"time/total_s": 1800.0}, 9999.0) == 0.5
    assert measured_hours({}, 360.0) == 0.1  # a job without times: the attempt's wall time
    assert measured_hours({}, None) is None and measured_hours({"time/total_s": 0.0}) is None


def plan(root: Path, *args: str) -> str:
    from typer.testing import CliRunner

    from ablate.cli import app

    argv = ["plan", str(REPO / "sweeps/table3.yaml"), "--scale", "tiny", "--runs-dir", str(root)]
    result = CliRunner().invoke(app, [*argv, *args], terminal_width=400)
    assert result.exit_code == 0, result.output
    return result.output


def total_line(output: str) -> str:
    return next(x for x in output.splitlines() if x.startswith("estimated GPU-hours:"))


def test_plan_prints_the_calibrated_estimate_and_where_it_comes_from(tmp_path, runs):
    """Rows 4-11 are priced at 3e5 x the FLOP model (tiny twins on a CPU-slow 'GPU'), 1-3 not."""
    root = tmp_path / "runs"
    write(root, runs[3], 2e5)
    write(root, runs[4], 4e5)
    out = plan(root)
    assert (
        "gpu_h of tiny-llama2 + tiny-diht (fp16, quantisation nf4) calibrated from 2 run(s) on "
        "NVIDIA H200: measured / FLOP model, median x300000.00" in out
    )
    line = total_line(out)
    assert "for 11 runs" in line
    assert "8 calibrated from earlier runs on NVIDIA H200, 3 from the FLOP model" in line
    flop = [flop_model_hours(run.spec.config) for run in runs]
    expected = sum(h * (3e5 if i >= 3 else 1.0) for i, h in enumerate(flop))
    assert float(line.split()[2]) == pytest.approx(expected, abs=0.051)
    assert f"{round(3e5 * flop[10], 2)}" in out  # row 11's gpu_h cell
    elsewhere = plan(root, "--gpu", "A100")  # no A100 runs: the FLOP model, said so
    assert total_line(elsewhere).endswith("(median 0.00 a run; one H100 at 35% MFU, FLOP model)")
    assert "11 run(s) have no earlier run of their model on a device matching 'A100'" in elsewhere


def test_plan_of_twins_with_a_fresh_twin_cache(tmp_path):
    """The twins' configs are written on first use, outside the meta device the counts use."""
    env = {**os.environ, "ABLATE_TWIN_DIR": str(tmp_path / "twins"), "PYTHONPATH": str(REPO)}
    argv = ["plan", str(REPO / "sweeps/table3.yaml"), "--scale", "tiny"]
    argv += ["--runs-dir", str(tmp_path / "runs")]
    proc = subprocess.run(
        [sys.executable, "-m", "ablate.cli", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "estimated GPU-hours: 0.0 for 11 runs" in proc.stdout
