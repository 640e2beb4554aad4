"""The embedded tiny default learns: its validation accuracy is clearly above chance."""

from __future__ import annotations

from pathlib import Path

import pytest

from ablate.data.scienceqa import load_scienceqa, resolve_dataset_root
from ablate.jobs.mmt_recipe import run_mmt
from ablate.spec.sweep import load_sweep

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_tiny_default_run_learns(tmp_path, make_ctx):
    sweep = load_sweep(REPO / "sweeps" / "table1.yaml", scale="tiny")
    spec = sweep.runs[0].spec
    metrics = run_mmt(spec, make_ctx(tmp_path))
    val = load_scienceqa(resolve_dataset_root(spec.config.data), spec.config.data.val_split)
    chance = 100.0 * sum(1.0 / len(p.choices) for p in val) / len(val)
    assert metrics["val/unparseable_pct"] < 10.0
    assert metrics["val/Avg"] > chance + 15.0, (metrics["val/Avg"], chance)
