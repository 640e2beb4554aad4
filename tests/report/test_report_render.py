import csv
import io
import math
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from report_store import REPO, fill_store

from ablate.report.build import render_report, resolve_targets
from ablate.report.render import latex_document, to_latex
from ablate.report.tables import TINY_LABEL

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("ABLATE_UPDATE_GOLDEN") == "1"


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.is_file(), f"no golden file {path}; run with ABLATE_UPDATE_GOLDEN=1 once"
    assert text == path.read_text(), f"{name} differs from its golden file"


def col(output, row, header):
    """The cell of ``row`` under column ``header``."""
    return row[output.table.header.index(header)]


def render_one(target, runs_root, out, fmt="all", plots=False):
    [output] = render_report(
        target,
        runs_root=runs_root,
        fmt=fmt,
        out_dir=out,
        reports_dir=REPO / "reports",
        plots=plots,
    )
    return output


@pytest.fixture
def tiny_store(runs_root):
    fill_store(runs_root, "table3.yaml", scale="tiny", skip=(5,), fail=(6,))
    fill_store(runs_root, "table2.yaml", scale="tiny")
    return runs_root


@pytest.fixture
def full_store(runs_root):
    fill_store(runs_root, "table1.yaml")
    return runs_root


def test_golden_table1_full_scale(full_store, tmp_path):
    out = render_one(REPO / "reports/table1.yaml", full_store, tmp_path / "out")
    md = (tmp_path / "out/table1.md").read_text()
    check_golden("table1.md", md)
    check_golden("table1.tex", (tmp_path / "out/table1.tex").read_text())
    assert TINY_LABEL not in md
    assert not out.table.tiny
    ours = out.table.rows[-1]
    assert ours[0] == "7B-lite-diht-BA (ours)"
    assert col(out, ours, "n") == "3"
    assert col(out, ours, "Δ Avg") == "-20.12"  # vs the paper's 90.12
    # predictions and 3 seeds: the interval covers questions and seeds
    assert col(out, ours, "95% CI Avg").endswith("(q+s)")
    assert col(out, ours, "unparsed %") == "0.50"
    # seeds at 80, 70, 60%: run variance 0.01; against the paper's one run, Var = 0.01 / 3 + 0.01
    z = 1.959964 + 0.841621
    assert col(out, ours, "MDD Avg") == f"{100 * z * (0.01 / 3 + 0.01) ** 0.5:.2f}" == "32.35"
    assert col(out, ours, "seeds") == "∞"  # 20 points is within the paper's own run's noise


def test_golden_table3_tiny(tiny_store, tmp_path):
    out = render_one(REPO / "sweeps/table3.yaml", tiny_store, tmp_path / "out")
    md = (tmp_path / "out/table3.md").read_text()
    check_golden("table3.md", md)
    check_golden("table3.tex", (tmp_path / "out/table3.tex").read_text())
    rows = {r[0]: r for r in out.table.rows}
    assert col(out, rows["4"], "p vs ref") == "ref"
    assert col(out, rows["3"], "p vs ref").endswith("(M)")  # single runs: exact McNemar
    assert rows["6"][5:7] == ["—", "0"]  # no record at all
    assert rows["7"][5:7] == ["—", "0"]  # only a failed attempt
    assert any("7 7B-lite-diht-loha-1" in n and "failed" in n for n in out.table.notes)
    assert all(r[6] == "0" or r[7] == "n/c" for r in out.table.rows)  # no delta vs the paper


def test_golden_table2_tiny(tiny_store, tmp_path):
    render_one("table2", tiny_store, tmp_path / "out", fmt=("md", "latex"))
    check_golden("table2.md", (tmp_path / "out/table2.md").read_text())
    check_golden("table2.tex", (tmp_path / "out/table2.tex").read_text())


def test_tiny_label_in_every_format_and_plot(tiny_store, tmp_path):
    out = render_one(REPO / "reports/table3.yaml", tiny_store, tmp_path / "out", plots=True)
    names = {p.name for p in out.files}
    assert {
        "table3.md",
        "table3.tex",
        "table3.csv",
        "table3.html",
        "table3_bars.png",
        "table3_bars.svg",
        "table3_standalone.tex",
    } <= names
    for ext in ("md", "html"):
        text = (tmp_path / f"out/table3.{ext}").read_text()
        assert TINY_LABEL in text and TINY_LABEL.upper() in text
    tex = (tmp_path / "out/table3.tex").read_text()
    assert "\\caption{Table 3: Backbones and adapter variants {[}" + TINY_LABEL in tex
    records = list(csv.DictReader(io.StringIO((tmp_path / "out/table3.csv").read_text())))
    assert records and all(r["tiny"] == "True" for r in records)
    assert TINY_LABEL in (tmp_path / "out/table3_bars.svg").read_text()
    assert (tmp_path / "out/table3_bars.png").read_bytes()[:4] == b"\x89PNG"


def test_heatmap_for_table2(tiny_store, tmp_path):
    out = render_one(
        REPO / "reports/table2.yaml", tiny_store, tmp_path / "out", fmt="csv", plots=True
    )
    svg = (tmp_path / "out/table2_heatmap.svg").read_text()
    assert "paper 90.12" in svg and "adapter.dim" in svg
    assert {p.suffix for p in out.files} == {".csv", ".png", ".svg"}


def test_csv_carries_numbers(full_store, tmp_path):
    render_one("table1", full_store, tmp_path / "out", fmt="csv")
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out/table1.csv").read_text())))
    ours = [r for r in rows if r["source"] == "ours" and r["metric"] == "test/Avg"]
    assert len(ours) == 1
    assert float(ours[0]["mean"]) == pytest.approx(70.0)
    assert float(ours[0]["delta"]) == pytest.approx(70.0 - 90.12)
    assert float(ours[0]["ci_low"]) < 70.0 < float(ours[0]["ci_high"])
    paper = [r for r in rows if r["row"] == "LLaVA" and r["metric"] == "test/SOC"]
    assert float(paper[0]["paper"]) == 95.95


def latex_structure_ok(tex: str) -> None:
    assert tex.count("\\begin{table}") == tex.count("\\end{table}") == 1
    assert tex.count("\\begin{tabular}") == tex.count("\\end{tabular}") == 1
    spec = re.search(r"\\begin\{tabular\}\{([lr]+)\}", tex).group(1)
    body = tex.split("\\toprule")[1].split("\\bottomrule")[0]
    for line in body.splitlines():
        if line.endswith("\\\\"):
            assert line.count(" & ") == len(spec) - 1, line
    text = re.sub(r"\\[%&_#$]", "", tex.split("\n", 1)[1])
    assert not re.search(r"[%&_#](?![^$]*\$)", text.replace(" & ", "")), "unescaped special"


def test_latex_structure(tiny_store, full_store, tmp_path):
    for label, store in (("tiny", tiny_store), ("full", full_store)):
        for name in ("table1", "table2", "table3"):
            render_one(name, store, tmp_path / label, fmt="latex")
            latex_structure_ok((tmp_path / f"{label}/{name}.tex").read_text())


@pytest.mark.skipif(
    shutil.which("pdflatex") is None,
    reason="no pdflatex here (.ci/run installs TeX Live and compiles)",
)
def test_latex_compiles_with_pdflatex(tiny_store, full_store, tmp_path):
    for label, store in (("tiny", tiny_store), ("full", full_store)):
        for name in ("table1", "table2", "table3"):
            render_one(name, store, tmp_path / label, fmt="latex")
            proc = subprocess.run(
                [
                    "pdflatex",
                    "-interaction=nonstopmode",
                    "-halt-on-error",
                    f"{name}_standalone.tex",
                ],
                cwd=tmp_path / label,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert proc.returncode == 0, proc.stdout[-2000:]
            assert (tmp_path / label / f"{name}_standalone.pdf").stat().st_size > 1000


def test_latex_escapes_special_characters():
    from ablate.report.tables import Table

    table = Table("t_1", "50% & $x_1$ #", ["a_b", "Δ"], [["x & y", "± 1"]], {1})
    tex = to_latex(table)
    assert "50\\% \\& \\$x\\_1\\$ \\#" in tex and "$\\Delta$" in tex and "x \\& y" in tex
    assert latex_document(tex).startswith("\\documentclass")


MULTI_SEED_SWEEP = """
    name: seeds
    base: {job: mmt, adapter: {name: bottleneck}}
    seeds: [0, 1]
    scales: {tiny: {data.dataset: synthetic}}
    runs:
      - {label: small, adapter.dim: 4}
      - {label: ref, adapter.dim: 16}
"""
MULTI_SEED_REPORT = """
    sweep: ../sweeps/seeds.yaml
    layout: rows
    reference: ref
    rows:
      - {label: ref, paper: 90.0}
      - {label: small, paper: 86.0}
"""


def render_seeds_sweep(tmp_path, runs_root, monkeypatch, *, report_spec: bool, **fill):
    """Write the two-row multi-seed sweep (and its report spec), fill the store, render md."""
    import report_store

    (tmp_path / "sweeps").mkdir()
    (tmp_path / "sweeps/seeds.yaml").write_text(textwrap.dedent(MULTI_SEED_SWEEP))
    (tmp_path / "reports").mkdir()
    if report_spec:
        (tmp_path / "reports/seeds.yaml").write_text(textwrap.dedent(MULTI_SEED_REPORT))
    monkeypatch.setattr(report_store, "SWEEPS", tmp_path / "sweeps")
    fill_store(runs_root, "seeds.yaml", **fill)
    [out] = render_report(
        tmp_path / "sweeps/seeds.yaml",
        runs_root=runs_root,
        fmt="md",
        out_dir=tmp_path / "out",
        reports_dir=tmp_path / "reports",
        plots=False,
    )
    return out


def test_multi_seed_rows_use_paired_bootstrap(tmp_path, runs_root, monkeypatch):
    out = render_seeds_sweep(tmp_path, runs_root, monkeypatch, report_spec=True, n_questions=300)
    ref, small = out.table.rows
    assert ref[0] == "ref" and col(out, ref, "p vs ref") == "ref" and ref[3] == "2"
    assert " ± " in small[2] and small[3] == "2"
    assert col(out, small, "p vs ref").endswith("(B)")
    # no tiny run: the delta against the paper is shown
    assert small[4] != "n/c" and not out.table.tiny


def test_sweep_without_report_spec_gives_a_plain_table(tmp_path, runs_root, monkeypatch):
    out = render_seeds_sweep(
        tmp_path, runs_root, monkeypatch, report_spec=False, scale="tiny", predictions=False
    )
    assert [r[0] for r in out.table.rows] == ["small", "ref"]
    assert out.table.tiny and TINY_LABEL in out.table.title
    # no predictions: interval over seeds
    assert col(out, out.table.rows[0], "95% CI").endswith("(s)")


def test_unknown_target_and_format(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope: not a report spec or sweep file"):
        resolve_targets("nope", REPO / "reports")
    with pytest.raises(ValueError, match="unknown report format 'pdf'"):
        render_report("table1", runs_root=tmp_path, fmt="pdf", reports_dir=REPO / "reports")


def test_report_never_imports_torch_or_mlflow(full_store, tmp_path):
    code = (
        "import sys; from ablate.report.build import render_report; "
        f"render_report('table1', runs_root={str(full_store)!r}, fmt='all', "
        f"out_dir={str(tmp_path / 'o')!r}, reports_dir={str(REPO / 'reports')!r}); "
        "bad = [m for m in ('torch', 'mlflow', 'transformers') if m in sys.modules]; "
        "assert not bad, bad"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_sweep_can_name_its_report_spec(tmp_path):
    (tmp_path / "sweeps").mkdir()
    (tmp_path / "reports").mkdir()
    sweep = tmp_path / "sweeps/seeds.yaml"
    sweep.write_text(textwrap.dedent(MULTI_SEED_SWEEP) + "report: {spec: ../my.yaml}\n")
    (tmp_path / "my.yaml").write_text(
        textwrap.dedent(MULTI_SEED_REPORT).replace("../sweeps/", "sweeps/")
    )
    [spec] = resolve_targets(sweep, tmp_path / "reports")
    assert spec.path == tmp_path / "sweeps/../my.yaml" and spec.reference == "ref"


def test_report_command_prints_and_writes(full_store, tmp_path):
    import typer
    from typer.testing import CliRunner

    from ablate.report.commands import report_command

    app = typer.Typer()
    app.command("report")(report_command)
    app.command("other")(lambda: None)
    args = [
        "report",
        "table1",
        "--runs-dir",
        str(full_store),
        "--out",
        str(tmp_path / "o"),
        "--reports-dir",
        str(REPO / "reports"),
        "-f",
        "md",
        "-f",
        "csv",
        "--no-plots",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "7B-lite-diht-BA (ours)" in result.output and "wrote" in result.output
    assert (tmp_path / "o/table1.csv").is_file() and (tmp_path / "o/table1.md").is_file()


def test_multi_seed_mdd_and_seeds_match_a_hand_computation(tmp_path, runs_root, monkeypatch):
    from statistics import NormalDist

    from ablate.spec.sweep import load_sweep

    n_q = 300
    out = render_seeds_sweep(tmp_path, runs_root, monkeypatch, report_spec=True, n_questions=n_q)
    # the store's runs: run i answers q right when (q * 7 + i * 3) % 10 < 8 - i % 3
    rows: dict[str, list[list[int]]] = {}
    for i, run in enumerate(load_sweep(tmp_path / "sweeps/seeds.yaml").runs):
        answers = [int((q * 7 + i * 3) % 10 < 8 - (i % 3)) for q in range(n_q)]
        rows.setdefault(run.label, []).append(answers)
    small, ref = rows["small"], rows["ref"]

    def var1(xs):
        mean = sum(xs) / len(xs)
        return sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)

    def acc(run):
        return sum(run) / n_q

    # pooled over both rows (one degree of freedom each)
    run_var = (var1([acc(r) for r in small]) + var1([acc(r) for r in ref])) / 2
    flip = sum(var1([r[q] for r in m]) for m in (small, ref) for q in range(n_q)) / (2 * n_q)
    paired = [sum(r[q] for r in small) / 2 - sum(r[q] for r in ref) / 2 for q in range(n_q)]
    questions = max(0.0, var1(paired) - flip / 2 - flip / 2) / n_q
    z = NormalDist().inv_cdf(0.975) + NormalDist().inv_cdf(0.8)
    mdd = 100 * z * (questions + run_var / 2 + run_var / 2) ** 0.5
    delta = 100 * sum(paired) / n_q
    budget = (delta / 100 / z) ** 2 - questions
    seeds = str(math.ceil(2 * run_var / budget)) if budget > 0 else "∞"

    ref_row, small_row = out.table.rows
    assert col(out, small_row, "MDD") == f"{mdd:.2f}"
    assert col(out, small_row, "seeds") == seeds
    assert col(out, ref_row, "MDD") == col(out, ref_row, "seeds") == "ref"
    assert any(f"run-to-run std {100 * run_var**0.5:.2f} points" in n for n in out.table.notes)
    [record] = [r for r in out.table.records if r["row"] == "small"]
    assert record["mdd"] == pytest.approx(mdd)


def test_single_seed_rows_show_mcnemar_mdd_and_unknown_seeds(tiny_store, tmp_path):
    from ablate.report.power import Z_SUM

    out = render_one("table2", tiny_store, tmp_path / "out", fmt="md")
    ref = next(r for r in out.table.rows if col(out, r, "p vs ref") == "ref")
    assert col(out, ref, "MDD") == "ref"
    for row in out.table.rows:
        if row is ref:
            continue
        assert col(out, row, "seeds") == "?"
    # dim 8 (run 0, 80% right) against dim 16 (run 1, 70%), 200 questions: count b and c
    n_q = 200
    run0 = [(q * 7) % 10 < 8 for q in range(n_q)]
    run1 = [(q * 7 + 3) % 10 < 7 for q in range(n_q)]
    b = sum(x and not y for x, y in zip(run0, run1, strict=True))
    c = sum(y and not x for x, y in zip(run0, run1, strict=True))
    assert (b, c) == (60, 40)
    mean = (b - c) / n_q
    var = (b + c - n_q * mean**2) / (n_q - 1)
    assert col(out, out.table.rows[0], "MDD") == f"{100 * Z_SUM * (var / n_q) ** 0.5:.2f}"
