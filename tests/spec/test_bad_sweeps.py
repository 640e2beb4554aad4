"""Malformed sweep files: each gives its own clear message naming file, line, key and value."""

from __future__ import annotations

import pytest

from ablate.errors import SpecError
from ablate.spec.sweep import load_sweep

GOOD_BASE = "base: {job: linear-fit, train: {steps: 3}}\n"

CASES = [
    # (id, file text, expected line or None, fragments that must be in the message)
    (
        "unknown-top-key",
        GOOD_BASE + "gird: {train.lr: [1]}\n",
        2,
        ["unknown key 'gird'", "did you mean 'grid'"],
    ),
    (
        "unknown-spec-key",
        GOOD_BASE + "grid:\n  train.lrr: [0.1]\n",
        3,
        ["train.lrr", "did you mean 'lr'", "allowed: steps, lr"],
    ),
    (
        "unknown-section",
        "base: {job: linear-fit, trian: {steps: 3}}\n",
        1,
        ["unknown key 'trian'", "did you mean 'train'"],
    ),
    (
        "bad-type",
        GOOD_BASE + "grid:\n  train.steps: [ten]\n",
        3,
        ["train.steps", "valid integer", "'ten'"],
    ),
    (
        "out-of-range",
        GOOD_BASE + "runs:\n  - {train.lr: -1}\n",
        3,
        ["train.lr", "greater than 0", "-1"],
    ),
    (
        "unknown-job",
        "base: {job: lineer-fit}\n",
        1,
        ["unknown job", "did you mean 'linear-fit'", "allowed:"],
    ),
    ("missing-job", "base: {train: {steps: 3}}\n", None, ["missing key 'job'"]),
    ("grid-not-list", GOOD_BASE + "grid:\n  train.lr: 0.1\n", 3, ["non-empty list", "0.1"]),
    ("grid-empty-list", GOOD_BASE + "grid:\n  train.lr: []\n", 3, ["non-empty list"]),
    (
        "zip-unequal",
        GOOD_BASE + "zip:\n  train.lr: [0.1, 0.2]\n  train.steps: [1]\n",
        2,
        ["equal lengths"],
    ),
    ("runs-not-list", GOOD_BASE + "runs: {train.lr: 0.1}\n", 2, ["runs must be a list"]),
    ("runs-entry-scalar", GOOD_BASE + "runs:\n  - 0.1\n", 3, ["non-empty mapping"]),
    ("seeds-bad", GOOD_BASE + "seeds: [0, -1]\n", 2, ["seeds must be", "-1"]),
    ("seeds-repeat", GOOD_BASE + "seeds: [1, 1]\n", 2, ["must not repeat"]),
    ("bad-yaml", GOOD_BASE + "grid: {train.lr: [0.1\n", 3, ["invalid YAML"]),
    (
        "duplicate-key",
        GOOD_BASE + "grid: {}\ngrid: {}\n",
        3,
        ["duplicate key 'grid'", "first written on line 2"],
    ),
    (
        "missing-extends",
        "extends: nowhere.yaml\n" + GOOD_BASE,
        1,
        ["extended file not found", "nowhere.yaml"],
    ),
    ("bad-name", "name: ../../etc\n" + GOOD_BASE, 1, ["sweep name", "../../etc"]),
    ("not-a-mapping", "- just\n- a list\n", 1, ["must be a mapping"]),
    ("all-excluded", GOOD_BASE + "exclude:\n  - {train.steps: 3}\n", None, ["no runs"]),
    ("unknown-scale", GOOD_BASE + "scales: {tiny: {train.steps: 1}}\n", None, []),
    ("dotted-through-scalar", GOOD_BASE + "runs:\n  - {train.steps.x: 1}\n", 3, ["not a mapping"]),
    ("bad-seed-in-base", "base: {job: linear-fit, seed: x}\n", 1, ["seed must be", "'x'"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_sweep_gives_specific_error(case, write):
    name, text, line, fragments = case
    path = write("bad.yaml", text)
    scale = "huge" if name == "unknown-scale" else None
    with pytest.raises(SpecError) as info:
        load_sweep(path, scale=scale)
    message = str(info.value)
    assert message.startswith(str(path)), message
    if line is not None:
        assert info.value.line == line, message
        assert f"{path}:{line}:" in message
    for fragment in fragments:
        assert fragment in message, message
    if name == "unknown-scale":
        assert "unknown scale 'huge'" in message and "allowed: tiny" in message


def test_extends_cycle_is_named(write):
    write("a.yaml", "extends: b.yaml\n" + GOOD_BASE)
    path = write("b.yaml", "extends: a.yaml\n")
    with pytest.raises(SpecError, match="cycle: b.yaml -> a.yaml -> b.yaml"):
        load_sweep(path)


def test_missing_file():
    with pytest.raises(SpecError, match="file not found"):
        load_sweep("/nonexistent/sweep.yaml")


def test_python_tags_are_refused(write):
    path = write("evil.yaml", GOOD_BASE + "description: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(SpecError, match="invalid YAML"):
        load_sweep(path)


def test_project_job_kinds_come_from_ablate_job_modules(write, tmp_path, monkeypatch):
    """A sweep may name a job kind a project registers in a module named by the environment."""
    (tmp_path / "project_jobs.py").write_text(
        "from ablate.jobs.linear_fit import LinearFitConfig\n"
        "from ablate.spec.job_kinds import JobKind, register_job\n"
        "register_job(JobKind('project-fit', LinearFitConfig, 'project_jobs:run'))\n"
    )
    path = write("p.yaml", "name: p\nbase: {job: project-fit}\n")
    with pytest.raises(SpecError, match="unknown job"):
        load_sweep(path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("ABLATE_JOB_MODULES", "project_jobs")
    [run] = load_sweep(path).runs
    assert run.spec.job == "project-fit"
