"""Throughput and cost columns of ``ablate report``: measured GPU-hours, samples/s, MFU per row."""

import csv
import io

import pytest
import typer
from report_store import REPO, fill_store
from typer.testing import CliRunner

from ablate.errors import SpecError
from ablate.report.build import render_report
from ablate.report.commands import report_command
from ablate.report.spec import load_report_spec


def timed(i: int) -> dict[str, float]:
    """Run i trained for (i + 1) half-hours and evaluated for 6 minutes, at 70 + i samples/s."""
    return {
        "time/train_s": 1800.0 * (i + 1),
        "time/eval_s": 360.0,
        "speed/samples_per_s": 70.0 + i,
        "speed/tokens_per_s": 20_000.0 + 1000 * i,
        "speed/mfu": 0.30 + 0.01 * i,
    }


def render(target, runs_root, out, **kwargs):
    [output] = render_report(
        target,
        runs_root=runs_root,
        fmt=("md", "csv", "latex"),
        out_dir=out,
        reports_dir=REPO / "reports",
        plots=False,
        **kwargs,
    )
    return output


def cells(output, row, headers):
    return [row[output.table.header.index(h)] for h in headers]


def test_speed_columns_show_each_rows_measured_cost(runs_root, tmp_path):
    """Rows 1-5 recorded times and speed, 6 none (no run), 8-11 only their records' wall time."""
    fill_store(
        runs_root,
        "table3.yaml",
        scale="tiny",
        skip=(5,),
        fail=(6,),
        extra={i: timed(i) for i in range(5)},
    )
    out = render("table3", runs_root, tmp_path / "out", speed=True)
    heads = ["GPU-h", "samples/s", "MFU %"]
    assert out.table.header[-3:] == heads
    rows = out.table.rows
    assert cells(out, rows[0], heads) == ["0.60", "70.0", "30.0"]  # (1800 + 360) s
    assert cells(out, rows[1], heads) == ["1.10", "71.0", "31.0"]
    assert cells(out, rows[5], heads) == ["—", "—", "—"]  # no record
    assert cells(out, rows[6], heads) == ["—", "—", "—"]  # failed only
    # no time metrics: the attempt's wall time (100 s), no throughput recorded
    assert cells(out, rows[7], heads) == ["0.03", "—", "—"]
    note = next(n for n in out.table.notes if n.startswith("GPU-h:"))
    assert "8.11 GPU-hours over 9 runs in all" in note and "samples/s, MFU %" in note
    md = (tmp_path / "out/table3.md").read_text()
    assert md.splitlines()[2].rstrip().endswith("| GPU-h | samples/s | MFU % |")
    assert r"MFU \%" in (tmp_path / "out/table3.tex").read_text()
    records = list(csv.DictReader(io.StringIO((tmp_path / "out/table3.csv").read_text())))
    first = next(r for r in records if r["row"] == "1 7B-lite-clip / LLaMA / router")
    assert float(first["gpu_h"]) == pytest.approx(0.6) and float(first["mfu"]) == 30.0


def test_speed_columns_are_opt_in(runs_root, tmp_path):
    fill_store(runs_root, "table3.yaml", scale="tiny", extra={0: timed(0)})
    out = render("table3", runs_root, tmp_path / "out")
    assert "GPU-h" not in out.table.header
    assert not any(n.startswith("GPU-h:") for n in out.table.notes)


def test_report_spec_names_its_speed_columns_in_a_columns_table(runs_root, tmp_path):
    """Table 1's three seeds are one row: each cell is the mean; the paper's rows stay blank."""
    spec = (REPO / "reports/table1.yaml").read_text().replace("../sweeps/", f"{REPO}/sweeps/")
    path = tmp_path / "table1.yaml"
    path.write_text(spec + "speed: [gpu_h, tokens_per_s]\n")
    fill_store(runs_root, "table1.yaml", extra={i: timed(i) for i in range(3)})
    out = render(path, runs_root, tmp_path / "out")
    assert out.table.header[-2:] == ["GPU-h", "tokens/s"]
    ours = out.table.rows[-1]
    assert ours[0].startswith("7B-lite-diht-BA (ours)")
    assert ours[-2:] == ["1.10", "21,000"]  # mean of 0.6, 1.1, 1.6 h; of 20k, 21k, 22k tokens/s
    assert out.table.rows[0][-2:] == ["", ""]  # a paper row
    ours_records = [r for r in out.table.records if r["source"] == "ours"]
    assert all(r["tokens_per_s"] == 21_000.0 for r in ours_records)


def test_unknown_speed_column_is_refused_with_the_allowed_ones(tmp_path):
    spec = (REPO / "reports/table1.yaml").read_text().replace("../sweeps/", f"{REPO}/sweeps/")
    path = tmp_path / "table1.yaml"
    path.write_text(spec + "speed: [gpu_h, flops]\n")
    with pytest.raises(SpecError) as err:
        load_report_spec(path)
    text = str(err.value)
    assert "unknown speed column 'flops'" in text and "samples_per_s" in text and "speed" in text


def test_report_command_speed_flag(runs_root, tmp_path):
    fill_store(runs_root, "table3.yaml", scale="tiny", extra={0: timed(0)})
    app = typer.Typer()
    app.command("report")(report_command)
    app.command("other")(lambda: None)
    args = ["report", "table3", "--runs-dir", str(runs_root), "--out", str(tmp_path / "o")]
    args += ["--reports-dir", str(REPO / "reports"), "--no-plots", "--speed"]
    result = CliRunner().invoke(app, args, terminal_width=300)
    assert result.exit_code == 0, result.output
    assert "GPU-h" in result.output and "GPU-hours over 11 runs in all" in result.output
