"""Sweep semantics: grid, zip, runs, exclude, include, seeds, extends, scales."""

from __future__ import annotations

from ablate.spec.sweep import load_sweep

BASE = """
base:
  job: linear-fit
  train: {steps: 10, lr: 0.07}
scales:
  tiny: {train.steps: 2}
"""


def axes(sweep):
    return [r.axes for r in sweep.runs]


def test_grid_is_cartesian_in_file_order(write):
    write("base.yaml", BASE)
    path = write(
        "s.yaml",
        """
        extends: base.yaml
        grid:
          train.lr: [0.1, 0.2]
          data.n_features: [2, 4, 8]
    """,
    )
    sweep = load_sweep(path)
    assert sweep.name == "s"
    assert len(sweep.runs) == 6
    assert axes(sweep)[:3] == [
        {"train.lr": 0.1, "data.n_features": 2},
        {"train.lr": 0.1, "data.n_features": 4},
        {"train.lr": 0.1, "data.n_features": 8},
    ]
    # the base's other values are kept
    assert all(r.spec.config.train.steps == 10 for r in sweep.runs)


def test_zip_varies_keys_together(write):
    write("base.yaml", BASE)
    path = write(
        "s.yaml",
        """
        extends: base.yaml
        zip:
          train.lr: [0.1, 0.2, 0.3]
          train.steps: [1, 2, 3]
    """,
    )
    assert axes(load_sweep(path)) == [
        {"train.lr": 0.1, "train.steps": 1},
        {"train.lr": 0.2, "train.steps": 2},
        {"train.lr": 0.3, "train.steps": 3},
    ]


def test_runs_are_rows_multiplied_by_grid_and_seeds(write):
    write("base.yaml", BASE)
    path = write(
        "s.yaml",
        """
        extends: base.yaml
        runs:
          - {label: small, data.n_features: 2}
          - {label: big, data.n_features: 16}
        grid: {train.lr: [0.1, 0.2]}
        seeds: [0, 1, 2]
    """,
    )
    sweep = load_sweep(path)
    assert len(sweep.runs) == 2 * 2 * 3
    assert [r.label for r in sweep.runs[:6]] == ["small"] * 6
    assert sweep.axis_keys == ("data.n_features", "train.lr", "seed")
    assert {r.spec.seed for r in sweep.runs} == {0, 1, 2}


def test_exclude_drops_and_include_adds(write):
    write("base.yaml", BASE)
    path = write(
        "s.yaml",
        """
        extends: base.yaml
        grid:
          train.lr: [0.1, 0.2]
          data.n_features: [2, 4]
        exclude:
          - {train.lr: 0.2, data.n_features: 4}
        include:
          - {train.lr: 0.5, data.n_features: 32}
    """,
    )
    got = axes(load_sweep(path))
    assert {"train.lr": 0.2, "data.n_features": 4} not in got
    assert got[-1] == {"train.lr": 0.5, "data.n_features": 32}
    assert len(got) == 4


def test_exclude_can_match_values_from_base(write):
    write("base.yaml", BASE)
    path = write(
        "s.yaml",
        """
        extends: base.yaml
        grid: {data.n_features: [2, 4]}
        exclude: [{train.steps: 10, data.n_features: 2}]
    """,
    )
    assert axes(load_sweep(path)) == [{"data.n_features": 4}]


def test_plain_key_replaces_section_dotted_key_sets_leaf(write):
    write("base.yaml", BASE)
    path = write(
        "s.yaml",
        """
        extends: base.yaml
        runs:
          - {train: {steps: 3}}
          - {train.steps: 3}
    """,
    )
    replaced, leaf = load_sweep(path).runs
    assert replaced.spec.config.train.lr == 0.05  # default, base's lr was dropped with the section
    assert replaced.spec.config.train.steps == 3
    assert leaf.spec.config.train.lr == 0.07 and leaf.spec.config.train.steps == 3


def test_extends_chain_child_wins(write):
    write("a.yaml", BASE)
    write(
        "b.yaml",
        """
        extends: a.yaml
        base: {train: {lr: 0.3}}
        seeds: [5]
    """,
    )
    path = write(
        "c.yaml",
        """
        extends: b.yaml
        name: custom-name
        base: {data: {noise: 0.5}}
    """,
    )
    sweep = load_sweep(path)
    (run,) = sweep.runs
    assert sweep.name == "custom-name"
    assert run.spec.config.train.lr == 0.3
    assert run.spec.config.train.steps == 10
    assert run.spec.config.data.noise == 0.5
    assert run.spec.seed == 5


def test_scale_applies_overrides_and_changes_ids(write):
    write("base.yaml", BASE)
    path = write("s.yaml", "extends: base.yaml\n")
    full, tiny = load_sweep(path), load_sweep(path, scale="tiny")
    assert tiny.runs[0].spec.config.train.steps == 2
    assert tiny.scale == "tiny" and tiny.scales == ("tiny",)
    assert full.runs[0].spec.run_id != tiny.runs[0].spec.run_id


def test_duplicate_points_are_planned_once(write):
    write("base.yaml", BASE)
    path = write(
        "s.yaml",
        """
        extends: base.yaml
        runs:
          - {train.lr: 0.07}
          - {label: same-as-base}
    """,
    )
    assert len(load_sweep(path).runs) == 1
