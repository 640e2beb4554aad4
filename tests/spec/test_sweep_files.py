"""Every sweep file shipped under sweeps/ expands and validates, at every scale it declares."""

from __future__ import annotations

from pathlib import Path

import pytest

from ablate.spec.sweep import load_sweep

REPO = Path(__file__).resolve().parents[2]

SWEEP_FILES = sorted((REPO / "sweeps").rglob("*.yaml"))


def test_there_are_sweep_files():
    names = {p.name for p in SWEEP_FILES}
    assert {"_paper.yaml", "table1.yaml", "table2.yaml", "table3.yaml"} <= names


@pytest.mark.parametrize("path", SWEEP_FILES, ids=[p.stem for p in SWEEP_FILES])
def test_sweep_file_expands_at_every_scale(path):
    sweep = load_sweep(path)
    ids = [r.spec.run_id for r in sweep.runs]
    assert len(ids) == len(set(ids)) >= 1
    for scale in sweep.scales:
        scaled = load_sweep(path, scale=scale)
        assert len(scaled.runs) == len(sweep.runs)
        assert not {r.spec.run_id for r in scaled.runs} & set(ids)


def test_paper_tables_have_the_papers_rows():
    t1 = load_sweep(REPO / "sweeps/table1.yaml")
    t2 = load_sweep(REPO / "sweeps/table2.yaml")
    t3 = load_sweep(REPO / "sweeps/table3.yaml")
    assert [r.spec.seed for r in t1.runs] == [0, 1, 2]
    assert [(r.spec.config.adapter.dim, r.spec.config.adapter.groups) for r in t2.runs] == [
        (8, 2),
        (16, 2),
        (4, 2),
        (32, 2),
        (16, 4),
    ]
    assert len(t3.runs) == 11
    adapters = [r.spec.config.adapter.name for r in t3.runs]
    assert adapters == ["router"] * 4 + ["concat_router"] * 2 + ["loha"] * 3 + [
        "lora_rep",
        "bottleneck_scaled",
    ]
    assert [r.spec.config.model.llm for r in t3.runs[:2]] == ["llama-7b", "llama2-7b"]
    assert t3.runs[2].spec.config.model.vision == "alip-vit-b32"


def test_table1_seed0_is_table2_reference_row():
    """One setting written once: the paper's BA run is the same run in Tables 1 and 2."""
    t1 = load_sweep(REPO / "sweeps/table1.yaml")
    t2 = load_sweep(REPO / "sweeps/table2.yaml")
    assert t1.runs[0].spec.run_id == t2.runs[1].spec.run_id


def test_tiny_scale_uses_twins_and_synthetic_data():
    t3 = load_sweep(REPO / "sweeps/table3.yaml", scale="tiny")
    for run in t3.runs:
        cfg = run.spec.config
        assert cfg.model.llm.startswith("tiny-") and cfg.model.vision.startswith("tiny-")
        assert cfg.data.dataset == "synthetic"
        # the paper profile's branches stay (one code path); only what a CPU cannot run changes
        assert cfg.model.quantization == "nf4" and cfg.model.precision == "fp16"
        assert cfg.train.autocast == "fp16" and cfg.train.accumulation > 1
        assert cfg.train.batch_size > 1 and cfg.train.length_grouped
        assert cfg.train.optimizer == "adamw"
        assert cfg.substitutions == (
            "train.optimizer: paged_adamw32bit -> adamw (paged AdamW needs CUDA)",
        )
