"""The loop around a sweep as a user types it: watch it, compare its runs, find the next step.

One tiny linear-fit sweep with bracketed labels runs once (inline, at ``--scale tiny``) in a
project folder with ``sweeps/``; the tests read what ``ablate sweep``, ``status``, ``runs`` and
``compare`` print about it, and what ``report`` says about a store without it.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
from pathlib import Path

import pytest
from ablate_cli import run_ablate

from ablate.spec.sweep import load_sweep
from ablate.store.record import AttemptRecord, AttemptStatus, FailureKind
from ablate.store.results_store import ResultsStore

REPO = Path(__file__).resolve().parents[2]

LOOP = """\
name: loop
base: {job: linear-fit, train: {steps: 5}}
runs:
  - {label: "[lr 0.01]", train.lr: 0.01}
  - {label: "[lr 0.02]", train.lr: 0.02}
scales: {tiny: {train.steps: 3}}
"""


def ablate(*args: str, cwd: Path, runs: Path | None = None) -> subprocess.CompletedProcess[str]:
    return run_ablate(
        *args, cwd=cwd, runs=runs, env={"ABLATE_GIT_SHA": "0" * 40, "ABLATE_GIT_DIRTY": "0"}
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """A project folder whose store holds the loop sweep's two tiny runs; the sweep's output."""
    root = tmp_path_factory.mktemp("project")
    (root / "sweeps").mkdir()
    (root / "sweeps/loop.yaml").write_text(LOOP)
    out = ablate(
        "sweep", "sweeps/loop.yaml", "--scale", "tiny", "--runner", "inline", "--no-tracking",
        cwd=root,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    return root, out


def test_sweep_prints_the_plan_once_and_ends_with_results_and_next_commands(project):
    _, out = project
    assert out.stdout.count("2 runs: 2 new; 2 to dispatch") == 1
    assert "2 runs (new 2)" not in out.stdout, "the plan's counts are not repeated"
    assert "[lr 0.01]" in out.stdout, "a bracketed label is shown as written"
    success = [line for line in out.stdout.splitlines() if "[loop] success " in line]
    assert len(success) == 2 and all("eval/r2 " in line for line in success)
    assert "finished: 2 succeeded, 0 did not" in out.stdout
    plan_header, results_header = (
        line.split() for line in out.stdout.splitlines() if line.startswith("run_id")
    )
    assert plan_header == ["run_id", "state", "label", "train.lr"]
    assert results_header == [
        *("run_id", "label", "train.lr", "scale", "state", "val/Avg", "test/Avg", "time")
    ]
    assert "next: ablate report sweeps/loop.yaml --scale tiny" in out.stdout
    assert "next: ablate compare sweeps/loop.yaml --scale tiny" in out.stdout


def test_status_without_a_file_lists_every_sweep_per_scale(project, tmp_path):
    root, _ = project
    out = ablate("status", cwd=root)
    assert out.returncode == 0, out.stderr
    assert "sweeps in" in out.stdout
    assert "  loop  tiny  2 runs: 2 done  sweeps/loop.yaml" in out.stdout
    empty = ablate("status", cwd=tmp_path)
    assert empty.returncode == 1
    assert "no runs recorded under" in empty.stdout and "ablate sweep sweeps/" in empty.stdout
    ResultsStore(tmp_path / "runs").write(
        AttemptRecord(
            run_id="a" * 12,
            sweep="gone",
            attempt=1,
            status=AttemptStatus.FAILED,
            job="mmt",
            failure_kind=FailureKind.ERROR,
        )
    )
    orphan = ablate("status", cwd=tmp_path)
    assert orphan.returncode == 0, orphan.stderr
    assert "  gone  ?  1 runs: 1 failed  (no loadable sweeps/gone.yaml)" in orphan.stdout


def test_status_of_a_file_shows_the_scale_the_runs_have(project):
    root, _ = project
    out = ablate("status", "sweeps/loop.yaml", cwd=root)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("status of loop (scale tiny)")
    assert "2 runs: 2 done; 0 to dispatch" in out.stdout, "tiny runs are not called new"
    full = ablate("status", "sweeps/loop.yaml", "--scale", "tiny", cwd=root)
    assert "2 runs: 2 done; 0 to dispatch" in full.stdout


def test_runs_shows_label_and_scale(project):
    root, _ = project
    out = ablate("runs", cwd=root)
    assert out.returncode == 0, out.stderr
    assert "label" in out.stdout and "scale" in out.stdout
    rows = [line for line in out.stdout.splitlines() if "success" in line]
    assert len(rows) == 2
    assert all("tiny" in row for row in rows)
    assert any("[lr 0.01]" in row for row in rows) and any("[lr 0.02]" in row for row in rows)


def test_compare_lists_each_run_as_csv_and_text(project):
    root, _ = project
    out = ablate("compare", "sweeps/loop.yaml", "--format", "csv", cwd=root)
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert [r["label"] for r in rows] == ["[lr 0.01]", "[lr 0.02]"]
    assert {r["scale"] for r in rows} == {"tiny"} and {r["state"] for r in rows} == {"done"}
    assert all(float(r["time"]) >= 0 for r in rows)
    text = ablate("compare", "sweeps/loop.yaml", "--sort", "label", "--reverse", cwd=root)
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("loop (scale tiny): 2 runs")
    assert text.stdout.index("[lr 0.02]") < text.stdout.index("[lr 0.01]")


ACC = """\
name: acc
base: {job: linear-fit, train: {steps: 5}}
grid: {train.lr: [0.01, 0.02, 0.03]}
"""


def test_compare_sorts_by_accuracy_in_markdown_and_json(write, tmp_path):
    """Three runs with known accuracies (records written to the store as a worker would)."""
    path = write("acc.yaml", ACC)
    store = ResultsStore(tmp_path / "runs")
    sweep = load_sweep(path)
    accuracy = {0.01: 70.0, 0.02: 90.0}  # the third run has no record: state new, blank
    for run in sweep.runs[:2]:
        value = accuracy[run.axes["train.lr"]]
        store.write(
            AttemptRecord(
                run_id=run.spec.run_id,
                sweep="acc",
                attempt=1,
                status=AttemptStatus.SUCCESS,
                job="linear-fit",
                metrics={"test/Avg": value, "val/Avg": value - 1},
                started_at=100.0,
                ended_at=165.0,
            )
        )
    md = ablate("compare", str(path), "--sort", "test/Avg", "--format", "md", cwd=tmp_path)
    assert md.returncode == 0, md.stderr
    lines = md.stdout.splitlines()
    assert lines[0] == "| run_id | train.lr | scale | state | val/Avg | test/Avg | time |"
    assert "| 0.02 | full | done | 89.00 | 90.00 | 1m05s |" in lines[2], "best first"
    assert "| 0.01 | full | done | 69.00 | 70.00 | 1m05s |" in lines[3]
    assert "| 0.03 | full | new |  |  |  |" in lines[4], "no result: last"
    doc = json.loads(ablate("compare", str(path), "--format", "json", cwd=tmp_path).stdout)
    assert doc["rows"][1]["test/Avg"] == 90.0 and doc["rows"][2]["state"] == "new"
    bad = ablate("compare", str(path), "--sort", "accuracy", cwd=tmp_path)
    assert bad.returncode == 2 and "no column 'accuracy'" in bad.stderr


def test_report_on_an_empty_store_says_what_fills_it(project, tmp_path):
    root, _ = project
    out = ablate(
        "report", "sweeps/loop.yaml", "--out", str(tmp_path / "out"), cwd=root,
        runs=tmp_path / "empty",
    )  # fmt: skip
    assert out.returncode == 1
    assert "loop: no successful runs in" in out.stderr
    assert "`ablate sweep sweeps/loop.yaml --scale tiny`" in out.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_set_selects_the_runs_made_with_it_in_compare_and_report(project, tmp_path):
    """``--set`` changes run ids in every command alike: the stored runs (made without it) are
    not the runs of ``--set train.steps=4``, and the report's hint repeats the override."""
    root, _ = project
    plain = ablate("compare", "loop", "--scale", "tiny", "--format", "csv", cwd=root)
    assert {r["state"] for r in csv.DictReader(io.StringIO(plain.stdout))} == {"done"}
    changed = ablate(
        "compare", "loop", "--scale", "tiny", "--set", "train.steps=4", "--format", "csv",
        cwd=root,
    )  # fmt: skip
    assert changed.returncode == 0, changed.stderr
    assert {r["state"] for r in csv.DictReader(io.StringIO(changed.stdout))} == {"new"}
    report = ablate(
        "report", "loop", "--set", "train.steps=4", "--out", str(tmp_path / "out"), cwd=root
    )
    assert report.returncode == 1
    assert "`ablate sweep sweeps/loop.yaml --scale tiny --set train.steps=4`" in report.stderr


def test_runner_help_lists_every_profile():
    out = ablate("sweep", "--help", cwd=REPO)
    assert out.returncode == 0
    help_text = " ".join(out.stdout.split())
    assert "(cpu, inline, local, slurm, slurm-cpu; runners/NAME.yaml)" in help_text


def test_plan_tables_show_dotted_fields_that_vary_never_a_dict(write, tmp_path):
    path = write(
        "rows.yaml",
        """
        name: rows
        base: {job: linear-fit}
        runs:
          - {label: "[a]", train: {steps: 5, lr: 0.1}}
          - {label: "[b]", train: {steps: 5, lr: 0.2}}
        """,
    )
    out = ablate("sweep", str(path), "--dry-run", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    header = out.stdout.splitlines()[1].split()
    assert header == ["run_id", "state", "label", "train.lr"], "train.steps is the same"
    assert "{" not in out.stdout and "[a]" in out.stdout
    table3 = ablate("sweep", str(REPO / "sweeps/table3.yaml"), "--dry-run", cwd=tmp_path)
    assert table3.returncode == 0, table3.stderr
    lines = table3.stdout.splitlines()
    assert lines[1].split()[-3:] == ["model.llm", "model.vision", "adapter"]
    assert len(lines) == 2 + 1 + 11 + 1, "one line a run"
    loha = next(line for line in lines if "loha-2" in line)
    assert "name=loha" in loha and "variant=2 form=fedpara rank=1 init=normal" in loha
    assert "{" not in table3.stdout and "'name'" not in table3.stdout


def test_plan_prints_no_bitsandbytes_kernels_notice(tmp_path):
    path = tmp_path / "one.yaml"
    path.write_text(f"name: one\nextends: {REPO / 'sweeps/_paper.yaml'}\n")
    out = ablate("plan", str(path), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "estimated GPU-hours" in out.stdout
    assert "kernels-community" not in out.stderr + out.stdout
