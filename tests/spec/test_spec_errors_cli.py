"""Spec errors as a user meets them: all at once, on the right line, with the right keys."""

from __future__ import annotations

import csv
import io
import subprocess
from pathlib import Path

from ablate_cli import run_ablate

REPO = Path(__file__).resolve().parents[2]
PAPER = REPO / "sweeps" / "_paper.yaml"


def ablate(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_ablate(*args, cwd=cwd, runs=None if cwd != REPO else "/nonexistent-runs")


def test_every_error_of_the_file_at_once_each_on_its_line(write, tmp_path):
    path = write(
        "mine.yaml",
        f"""
        extends: {PAPER}
        base:
          adapter: {{name: bottleneck, dimm: 3}}
          train: {{lrr: 0.01}}
          data.rot: x
        runs:
          - {{label: a, adapter.name: botleneck}}
          - {{label: b, adapter: {{name: router, dim: 8, groupz: 2}}}}
          - {{label: c, train.epochs: 3}}
        """,
    )
    out = ablate("sweep", str(path), "--dry-run", cwd=tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    err = out.stderr
    assert "error: 5 errors:" in err
    assert f"{path}:3: adapter.dimm: unknown key 'dimm' (did you mean 'dim'?); allowed: " in err
    assert "allowed: name, placement, dim, groups" in err  # the bottleneck's own fields
    assert f"{path}:4: train.lrr: unknown key 'lrr' (did you mean 'lr'?)" in err
    assert f"{path}:5: data.rot: unknown key 'rot' (did you mean 'root'?)" in err
    assert (
        f"{path}:7: adapter.name: unknown adapter 'botleneck' (did you mean 'bottleneck'?)" in err
    )
    assert f"{path}:8: adapter.groupz: unknown key 'groupz' (did you mean 'groups'?)" in err
    assert "temperature" in err  # the router's fields listed for the router row
    assert "_paper.yaml" not in err  # nothing the user wrote is blamed on the extended file


def test_dotted_keys_under_base_set_one_field(write, tmp_path):
    dotted = write("dotted.yaml", f"extends: {PAPER}\nbase:\n  train.lr: 0.02\n")
    nested = write("nested.yaml", f"extends: {PAPER}\nbase:\n  train: {{lr: 0.02}}\n")
    ids = [plan_rows(ablate("sweep", str(p), "--dry-run", "--format", "csv", cwd=tmp_path))
           for p in (dotted, nested)]  # fmt: skip
    assert ids[0] == ids[1] and len(ids[0]) == 1


def plan_rows(out: subprocess.CompletedProcess[str]) -> list[str]:
    assert out.returncode == 0, out.stdout + out.stderr
    return [row["run_id"] for row in csv.DictReader(io.StringIO(out.stdout))]


def test_a_missing_sweep_file_names_the_nearest_sweep():
    out = ablate("sweep", "sweeps/tabel3.yaml", "--dry-run", cwd=REPO)
    assert out.returncode == 2
    assert "sweeps/tabel3.yaml: file not found (did you mean sweeps/table3.yaml?)" in out.stderr
    bare = ablate("plan", "tabel3", cwd=REPO)
    assert bare.returncode == 2
    assert "also looked for sweeps/tabel3.yaml (did you mean sweeps/table3.yaml?)" in bare.stderr
    report = ablate("report", "tabel3", cwd=REPO)
    assert report.returncode != 0 and "(did you mean sweeps/table3.yaml?)" in report.stderr


def test_bare_sweep_names_work_for_every_command():
    dry = ablate("sweep", "table3", "--scale", "tiny", "--dry-run", "-q", cwd=REPO)
    assert dry.returncode == 0, dry.stderr
    assert "11 runs: 11 new; 11 to dispatch" in dry.stdout
    status = ablate("status", "table2", "--scale", "tiny", cwd=REPO)
    assert status.returncode == 0, status.stderr
    assert "to dispatch" in status.stdout
    plan = ablate("plan", "table1", "--scale", "tiny", cwd=REPO)
    assert plan.returncode == 0, plan.stderr
    assert "table1:" in plan.stdout
    compare = ablate("compare", "table2", "--scale", "tiny", "--format", "csv", cwd=REPO)
    assert compare.returncode == 0, compare.stderr
    assert compare.stdout.startswith("run_id,")


def test_set_overrides_hash_like_the_file(write, tmp_path):
    plain = write("plain.yaml", "name: s\nbase: {job: linear-fit, train: {steps: 5}}\n")
    written = write(
        "written.yaml", "name: s\nbase: {job: linear-fit, train: {steps: 5, lr: 0.01}}\n"
    )
    dry = ("--dry-run", "--format", "csv")
    set_ids = plan_rows(ablate("sweep", str(plain), *dry, "--set", "train.lr=0.01", cwd=tmp_path))
    file_ids = plan_rows(ablate("sweep", str(written), *dry, cwd=tmp_path))
    plain_ids = plan_rows(ablate("sweep", str(plain), *dry, cwd=tmp_path))
    assert set_ids == file_ids and set_ids != plain_ids
    both = plan_rows(
        ablate("sweep", str(plain), *dry, "--set", "train.lr=1e-2", "--set", "seed=3", cwd=tmp_path)
    )
    assert both != set_ids  # repeatable: the seed is set too
    status = ablate("status", str(plain), "--set", "train.lr=0.01", "--format", "csv", cwd=tmp_path)
    assert plan_rows(status) == file_ids
    plan = ablate("plan", str(plain), "--set", "train.lr=0.01", cwd=tmp_path)
    assert plan.returncode == 0 and file_ids[0] in plan.stdout
    bad = ablate("sweep", str(plain), "--dry-run", "--set", "train.lrr=0.01", cwd=tmp_path)
    assert bad.returncode == 2
    assert "--set: train.lrr: unknown key 'lrr' (did you mean 'lr'?)" in bad.stderr
    malformed = ablate("plan", str(plain), "--set", "train.lr", cwd=tmp_path)
    assert malformed.returncode == 2
    assert "--set: expected KEY=VALUE with a dotted key" in malformed.stderr
