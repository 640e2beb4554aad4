"""How a plan prints: a summary when large, the full table on request, CSV/JSON, counts only."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from ablate.cli import app
from ablate.orchestrate.plan import make_plan
from ablate.orchestrate.plan_view import EDGE_ROWS, SUMMARY_ABOVE, plan_table, show_plan
from ablate.orchestrate.run_columns import varying_keys
from ablate.spec.sweep import load_sweep
from ablate.store.results_store import ResultsStore

BIG = """
name: big
base: {job: linear-fit, train: {steps: 5}}
grid: {train.lr: [0.01, 0.02, 0.03, 0.04, 0.05], train.batch_size: [4, 5, 6, 7, 8]}
seeds: [0, 1]
"""
BOX = set("┃│┏━┡└─╇")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def big(write, tmp_path):
    """A 50-run sweep file and its run ids in sweep order."""
    path = write("big.yaml", BIG)
    return path, [r.spec.run_id for r in load_sweep(path).runs]


def invoke(tmp_path, *args: str):
    result = CliRunner().invoke(app, [*args, "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_large_plan_prints_a_summary_in_plain_text(big, tmp_path):
    path, run_ids = big
    assert len(run_ids) == 50 > SUMMARY_ABOVE
    out = invoke(tmp_path, "sweep", str(path), "--dry-run")
    lines = out.splitlines()
    assert lines[0].startswith("sweep big -> ")
    assert lines[-1] == "50 runs: 50 new; 50 to dispatch", "the counts close the summary"
    assert "  train.lr          5 values: 0.01, 0.02, 0.03, 0.04, 0.05" in lines
    assert "  train.batch_size  5 values: 4, 5, 6, 7, 8" in lines
    assert "  seed              2 values: 0, 1" in lines
    shown = [rid for rid in run_ids if rid in out]
    assert shown == run_ids[:EDGE_ROWS] + run_ids[-EDGE_ROWS:], "first and last rows only"
    assert f"… {50 - 2 * EDGE_ROWS} more runs (--show all" in out
    assert not BOX & set(out), "off a terminal: no box drawing"
    assert "\x1b[" not in out, "off a terminal: no colour codes"


def test_show_all_prints_every_row(big, tmp_path):
    path, run_ids = big
    out = invoke(tmp_path, "sweep", str(path), "--dry-run", "--show", "all")
    assert all(rid in out for rid in run_ids)
    assert "more runs" not in out and "values:" not in out
    assert out.splitlines()[-1] == "50 runs: 50 new; 50 to dispatch"
    assert not BOX & set(out)


def test_small_plan_prints_in_full_and_summary_on_request(write, tmp_path):
    path = write("s.yaml", "name: s\nbase: {job: linear-fit}\ngrid: {train.lr: [0.1, 0.2]}\n")
    full = invoke(tmp_path, "sweep", str(path), "--dry-run")
    assert "values:" not in full and "2 runs: 2 new; 2 to dispatch" in full
    summary = invoke(tmp_path, "sweep", str(path), "--dry-run", "--show", "summary")
    assert "  train.lr  2 values: 0.1, 0.2" in summary


def test_csv_parses_back_to_every_row(big, tmp_path):
    path, run_ids = big
    out = invoke(tmp_path, "sweep", str(path), "--dry-run", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["run_id"] for r in rows] == run_ids
    assert list(rows[0]) == [
        "run_id",
        "state",
        "dispatch",
        "attempts",
        "failures",
        "train.lr",
        "train.batch_size",
        "seed",
    ]
    assert rows[0]["state"] == "new" and rows[0]["dispatch"] == "yes"
    assert float(rows[-1]["train.lr"]) == 0.05 and rows[-1]["seed"] == "1"


def test_json_parses_back_with_typed_values(big, tmp_path):
    path, run_ids = big
    out = invoke(tmp_path, "sweep", str(path), "--dry-run", "--format", "json")
    doc = json.loads(out)
    assert doc["counts"]["new"] == 50 and doc["to_dispatch"] == 50
    assert [r["run_id"] for r in doc["rows"]] == run_ids
    first = doc["rows"][0]
    assert first["dispatch"] is True and first["attempts"] == 0 and first["train.lr"] == 0.01


def test_quiet_prints_the_counts_only(big, tmp_path):
    path, _ = big
    out = invoke(tmp_path, "sweep", str(path), "--dry-run", "-q")
    assert out == "50 runs: 50 new; 50 to dispatch\n"


def test_format_needs_dry_run_and_known_values(big, tmp_path):
    path, _ = big
    runner = CliRunner()
    for args in (
        ["--format", "csv"],
        ["--dry-run", "--format", "xml"],
        ["--dry-run", "--show", "some"],
    ):
        result = runner.invoke(
            app, ["sweep", str(path), *args, "--runs-dir", str(tmp_path / "runs")]
        )
        assert result.exit_code == 2, (args, result.output)
    assert not (tmp_path / "runs" / "big").exists()


def test_status_takes_the_same_views(big, tmp_path):
    path, run_ids = big
    doc = json.loads(invoke(tmp_path, "status", str(path), "--format", "json"))
    assert len(doc["rows"]) == 50 and doc["title"] == "status of big"
    out = invoke(tmp_path, "status", str(path))
    assert out.splitlines()[-1] == "50 runs: 50 new; 50 to dispatch"
    assert sum(rid in out for rid in run_ids) == 2 * EDGE_ROWS


def test_terminal_gets_a_rich_summary(big, tmp_path):
    path, run_ids = big
    plan = make_plan(load_sweep(path), ResultsStore(tmp_path / "runs"))
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=200, color_system=None)
    show_plan(plan_table(plan, "sweep big"), console)
    out = buffer.getvalue()
    assert BOX & set(out), "a terminal gets the box table"
    assert sum(rid in out for rid in run_ids) == 2 * EDGE_ROWS
    assert out.rstrip().splitlines()[-1] == "50 runs: 50 new; 50 to dispatch"


def test_dry_run_imports_only_what_planning_needs(big, tmp_path):
    """``--dry-run`` pays start-up in every call: no torch, MLflow, pandas, submitit or loop."""
    path, _ = big
    heavy = (
        "torch",
        "mlflow",
        "pandas",
        "pyarrow",
        "submitit",
        "ablate.orchestrate.sweep_loop",
        "ablate.tracking.mlflow_tracker",
    )
    code = (
        "import sys\n"
        "from ablate.cli import main\n"
        f"sys.argv = ['ablate', 'sweep', {str(path)!r}, '--dry-run', '-q',"
        f" '--runs-dir', {str(tmp_path / 'runs')!r}]\n"
        "try:\n    main()\nexcept SystemExit as stop:\n    assert not stop.code, stop.code\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines() == ["50 runs: 50 new; 50 to dispatch", "[]"], proc.stdout


def test_a_column_varies_when_any_row_differs():
    same = {"a": 1, "b": [1, 2], "c": {"x": 1}, "e": 1}
    rows = [dict(same) for _ in range(3)] + [{**same, "c": {"x": 2}, "d": 0, "e": 1.0}]
    assert varying_keys(rows, ["a", "b", "c", "d", "e"]) == ["c", "d"]
    assert varying_keys(rows[:3], ["a", "b", "c", "d"]) == []
    assert varying_keys([], ["a"]) == []
