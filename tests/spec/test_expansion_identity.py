"""Expansion's shortcuts change nothing: the runs, their ids and axes of validating every run.

A sweep's seeds share their point's config (validated, dumped and encoded once) and run ids are
spliced from the config's canonical JSON. Each test compares against the straightforward path:
every run built from its full spec dict by :func:`build_run_spec`, and every id computed by its
definition (:func:`run_id_of` of job, seed and the semantic sections).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

import ablate.spec.sweep as sweep_module
from ablate.errors import SpecError
from ablate.spec.identity import run_id_of, semantic_dict
from ablate.spec.run_spec import RunSpec, build_run_spec
from ablate.spec.sweep import load_sweep

REPO = Path(__file__).resolve().parents[2]
SWEEP_FILES = sorted(p for p in (REPO / "sweeps").rglob("*.yaml") if not p.name.startswith("_"))

#: Ids as every version of the ``ablate-run-v1`` scheme computed them: a change here orphans
#: every run already in a store.
PINNED_IDS = [
    ({"job": "linear-fit", "seed": 0, "train": {"lr": 0.001}}, "1f7c55e62d25"),
    ({"job": "linear-fit", "seed": 7}, "accf778c86c0"),
    ({"job": "mmt", "seed": 0}, "83805f1d27c4"),
    (
        {
            "job": "mmt",
            "seed": 3,
            "adapter": {"name": "router", "dim": 8},
            "model": {"llm_path": "/x/y"},
        },
        "cfd83c38c6ee",
    ),
]

GRID = """
base:
  job: linear-fit
  train: {steps: 100}
  data: {n_features: 4}
grid:
  train.lr: [0.001, 1e-2, 0.1]
  train.batch_size: [8, 16]
  data.noise: [0, 0.5]
seeds: [0, 1, 2, 3]
scales:
  tiny: {train.steps: 2}
"""


def defined_run_id(spec: RunSpec) -> str:
    """The run id by its definition, without the expansion's shared encoding."""
    dumped = spec.config.model_dump(mode="json")
    return run_id_of({"job": spec.job, "seed": spec.seed, **semantic_dict(spec.config, dumped)})


def assert_same_run(run: RunSpec, reference: RunSpec) -> None:
    assert run == reference
    assert run.to_dict() == reference.to_dict()
    assert run.run_id == reference.run_id == defined_run_id(reference)


@pytest.mark.parametrize(("data", "expected"), PINNED_IDS)
def test_run_ids_are_pinned(data, expected):
    spec = build_run_spec(data)
    assert spec.run_id == expected
    assert defined_run_id(spec) == expected
    assert spec.with_seed(spec.seed).run_id == expected


@pytest.mark.parametrize("scale", [None, "tiny"])
def test_grid_with_seeds_equals_every_run_built_in_full(write, scale):
    sweep = load_sweep(write("grid.yaml", GRID), scale=scale)
    steps = 2 if scale else 100
    expected = []
    for lr, batch, noise in itertools.product([0.001, 0.01, 0.1], [8, 16], [0, 0.5]):
        for seed in range(4):
            full = {
                "job": "linear-fit",
                "seed": seed,
                "train": {"steps": steps, "lr": lr, "batch_size": batch},
                "data": {"n_features": 4, "noise": noise},
            }
            axes = {"train.lr": lr, "train.batch_size": batch, "data.noise": noise, "seed": seed}
            expected.append((build_run_spec(full), axes))
    assert len(sweep.runs) == len(expected) == 48
    for run, (reference, axes) in zip(sweep.runs, expected, strict=True):
        assert_same_run(run.spec, reference)
        assert run.axes == axes
        assert list(run.axes) == list(axes)


def expand_building_every_run(monkeypatch, path: Path, scale: str | None):
    """``load_sweep`` with each seed's run built and validated from its full spec dict."""
    real = sweep_module._seed_runs

    def every_run(*args, **kwargs):
        return real(*args, **{**kwargs, "same_config": False})

    with monkeypatch.context() as patch:
        patch.setattr(sweep_module, "_seed_runs", every_run)
        return load_sweep(path, scale=scale)


@pytest.mark.parametrize("path", SWEEP_FILES, ids=[p.name for p in SWEEP_FILES])
def test_sweep_files_expand_as_when_every_run_is_built(path, monkeypatch):
    for scale in (None, *load_sweep(path).scales):
        sweep = load_sweep(path, scale=scale)
        reference = expand_building_every_run(monkeypatch, path, scale)
        assert len(sweep.runs) == len(reference.runs)
        for run, ref in zip(sweep.runs, reference.runs, strict=True):
            assert_same_run(run.spec, ref.spec)
            assert (run.axes, run.label) == (ref.axes, ref.label)


@pytest.mark.parametrize(
    ("overrides", "runs"), [({"train.lr": 0.5}, 16), ({"seed": 5}, 12), ({"data.noise": 1}, 24)]
)
def test_set_values_expand_as_when_every_run_is_built(write, monkeypatch, overrides, runs):
    """``--set`` collapses the axis it sets; ``--set seed`` gives every seed of a point one run."""
    path = write("grid.yaml", GRID)
    sweep = load_sweep(path, overrides=overrides)
    real = sweep_module._seed_runs

    def every_run(*args, **kwargs):
        return real(*args, **{**kwargs, "same_config": False})

    monkeypatch.setattr(sweep_module, "_seed_runs", every_run)
    reference = load_sweep(path, overrides=overrides)
    assert len(sweep.runs) == len(reference.runs) == runs
    for run, ref in zip(sweep.runs, reference.runs, strict=True):
        assert_same_run(run.spec, ref.spec)
        assert run.axes == ref.axes
    if "seed" in overrides:
        assert {run.spec.seed for run in sweep.runs} == {5}


def test_bad_grid_value_with_seeds_names_file_line_key_and_value(write):
    path = write(
        "bad.yaml",
        """
        base: {job: linear-fit}
        grid:
          train.lr: [0.1, 0.2, -3]
        seeds: [0, 1, 2]
        """,
    )
    with pytest.raises(SpecError) as info:
        load_sweep(path)
    message = str(info.value)
    assert message.startswith(f"{path}:3:"), message
    assert "train.lr" in message and "greater than 0" in message and "-3" in message
