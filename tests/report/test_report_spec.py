import textwrap
from pathlib import Path

import pytest

from ablate.errors import SpecError
from ablate.report.spec import find_report_spec, load_report_spec
from ablate.spec.sweep import load_sweep

REPO = Path(__file__).resolve().parents[2]
REPORTS = sorted((REPO / "reports").glob("*.yaml"))


def test_reports_folder_has_the_three_tables():
    assert {p.stem for p in REPORTS} >= {"table1", "table2", "table3"}


@pytest.mark.parametrize("path", REPORTS, ids=lambda p: p.name)
def test_every_report_spec_loads_and_names_its_sweeps_rows(path):
    spec = load_report_spec(path)
    sweep = load_sweep(spec.sweep_path)
    labels = {run.label for run in sweep.runs}
    for row in spec.rows:
        assert row.label in labels, f"{path.name}: row {row.label!r} is not a label of the sweep"
    assert spec.reference is not None


def test_paper_values_are_the_papers():
    t1 = load_report_spec(REPO / "reports/table1.yaml")
    assert t1.columns == ("NAT", "SOC", "LAN", "TXT", "IMG", "NO", "G1-6", "G7-12", "Avg")
    rows = {r.method: r.values for r in t1.paper}
    assert len(rows) == 11
    ours = (90.28, 92.46, 87.91, 89.25, 87.01, 90.38, 90.68, 89.12, 90.12)
    assert rows["7B-lite-diht-BA"] == ours
    assert rows["BLIP-2"][:-1] == (None,) * 8 and rows["BLIP-2"][-1] == 89.5
    assert rows["LaVIN-7B"][1] == 94.94  # the table, not the text's 94.34
    t2 = load_report_spec(REPO / "reports/table2.yaml")
    assert [r.paper for r in t2.rows] == [87.88, 90.12, 86.49, 84.15, 89.74]
    t3 = load_report_spec(REPO / "reports/table3.yaml")
    assert [r.paper for r in t3.rows] == [
        88.35,
        88.78,
        87.97,
        88.68,
        87.62,
        86.88,
        63.10,
        55.10,
        49.68,
        85.81,
        84.01,
    ]
    assert any("87.98" in note for note in t3.notes)


def test_find_report_spec_for_a_sweep():
    found = find_report_spec(REPO / "sweeps/table3.yaml", REPO / "reports")
    assert found is not None and found.name == "table3.yaml"
    assert find_report_spec(REPO / "sweeps/_paper.yaml", REPO / "reports") is None


GOOD = """
    name: t
    sweep: ../sweeps/table2.yaml
    layout: rows
    cells: [Dim]
    reference: a
    rows:
      - {label: a, cells: [8], paper: 1.0}
"""


def write_spec(tmp_path, text):
    (tmp_path / "sweeps").mkdir(exist_ok=True)
    (tmp_path / "sweeps/table2.yaml").write_text("name: x\nbase: {job: linear-fit}\n")
    path = tmp_path / "reports" / "t.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def test_minimal_spec(tmp_path):
    spec = load_report_spec(write_spec(tmp_path, GOOD))
    assert spec.rows[0].cells == ("8",) and spec.rows[0].paper == 1.0


@pytest.mark.parametrize(
    "old,new,message",
    [
        ("layout: rows", "layout: rows\nlayuot: x", r"t.yaml:4: layuot: unknown key 'layuot'"),
        ("layout: rows", "layout: grid", r"t.yaml:3: layout: unknown layout \(got 'grid'\)"),
        ("cells: [8]", "cells: [8, 2]", r"rows.0.cells: expected 1 cells"),
        ("paper: 1.0", "paper: high", r"rows.0.paper: expected a number"),
        ("reference: a", "reference: b", r"reference must name a row's label.*allowed: a"),
        ("cells: [Dim]", "cells: [NO]", r"cells.0: YAML read this item as a boolean"),
        ("../sweeps/table2.yaml", "../sweeps/nope.yaml", r"t.yaml:2: sweep: sweep file not found"),
        ("{label: a,", "{label: a, match: {x: 1},", r"exactly one of 'label' or 'match'"),
    ],
)
def test_bad_specs_name_file_line_and_key(tmp_path, old, new, message):
    text = textwrap.dedent(GOOD).replace(old, new)
    with pytest.raises(SpecError, match=message):
        load_report_spec(write_spec(tmp_path, text))


def test_columns_layout_checks_value_count(tmp_path):
    text = """
        sweep: ../sweeps/table2.yaml
        layout: columns
        columns: [A, B]
        paper:
          - {method: x, values: [1, 2, 3]}
    """
    with pytest.raises(SpecError, match=r"paper.0.values: expected a list of 2 values"):
        load_report_spec(write_spec(tmp_path, text))
