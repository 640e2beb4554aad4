"""The protocol footer: its content in every format, per-row values, the environment warning."""

import csv
import io
from pathlib import Path

import pytest
from report_store import REPO, fill_store

from ablate.report.build import render_report
from ablate.report.collect import RowRuns, RunResult
from ablate.report.protocol import fingerprint, protocol_lines

FOOTER = [
    "split: test.",
    "decoding: temperature 0.1, top_p 0.75, max_new_tokens 8, stop_at_answer on.",
    "unparseable answers: 1.00% of answers per run on average (0.00-2.00% over 5 runs); "
    "rule: counted wrong (eval.unparseable=wrong, as LLaVA).",
    "prompt format: QCM-ALE: question, context, options -> answer, lecture, explanation, "
    "as LaVIN, image marker on.",
    "images: resize direct (bicubic to the tower's square input, aspect ratio not kept, as "
    "LaVIN); normalisation seed (OpenAI CLIP statistics in training, ImageNet's in evaluation, "
    "as LaVIN's code).",
    "precision: backbones fp16, quantisation nf4, autocast fp16.",
    "optimiser: effective batch 4, effective lr 0.02 (recorded, train.lr_mode=absolute).",
    "environment: torch 2.14.1, CUDA not recorded, CPU.",
]


def render_table2(runs_root: Path, out: Path, fmt="all"):
    [output] = render_report(
        "table2",
        runs_root=runs_root,
        fmt=fmt,
        out_dir=out,
        reports_dir=REPO / "reports",
        plots=False,
    )
    return output


def test_footer_content_in_every_format(runs_root, tmp_path):
    fill_store(runs_root, "table2.yaml", scale="tiny")
    output = render_table2(runs_root, tmp_path / "out")
    assert output.table.footer == FOOTER  # the tiny scale's settings, as the store recorded them
    md = (tmp_path / "out/table2.md").read_text()
    assert "\n*Protocol*\n\n" + "\n".join(f"- {line}" for line in FOOTER) + "\n" in md
    assert md.index("*Protocol*") > md.index("- Paper values")  # after the notes
    tex = (tmp_path / "out/table2.tex").read_text()
    assert "\\textit{Protocol:}\\\\" in tex
    assert "top\\_p 0.75, max\\_new\\_tokens 8" in tex
    assert "environment: torch 2.14.1, CUDA not recorded, CPU." in tex
    html = (tmp_path / "out/table2.html").read_text()
    assert '<p class="protocol">Protocol</p>' in html
    assert "<li>split: test.</li>" in html and "WARNING" not in html
    records = list(csv.DictReader(io.StringIO((tmp_path / "out/table2.csv").read_text())))
    assert [r["row"] for r in records if r["source"] == "protocol"] == FOOTER


def test_environment_mismatch_warns_and_names_the_rows(runs_root, tmp_path):
    gpu = {"python": "3.11.9", "torch": "2.13.0", "cuda": "12.8", "gpu_count": "2"}
    fill_store(runs_root, "table2.yaml", scale="tiny", versions={2: gpu})
    output = render_table2(runs_root, tmp_path / "out")
    env = next(line for line in output.table.footer if line.startswith("environment:"))
    assert env == (
        "environment: torch 2.14.1, CUDA not recorded, CPU (dim 8, groups 2, dim 16, groups 2, "
        "dim 32, groups 2, dim 16, groups 4); torch 2.13.0, CUDA 12.8, CPU (dim 4, groups 2)."
    )
    warning = output.table.footer[-1]
    assert warning.startswith("WARNING: rows differ in environment")
    html = (tmp_path / "out/table2.html").read_text()
    assert f'<li class="warn">{warning}</li>' in html
    assert warning in (tmp_path / "out/table2.md").read_text()


def test_same_environment_on_a_gpu_has_no_warning(runs_root, tmp_path):
    fill_store(runs_root, "table2.yaml", scale="tiny", device="NVIDIA H200")
    footer = render_table2(runs_root, tmp_path / "out", fmt="md").table.footer
    assert footer[-1] == "environment: torch 2.14.1, CUDA not recorded, NVIDIA H200 x1."


def result(spec: dict, metrics: dict | None = None, **kw) -> RunResult:
    return RunResult(
        run_id="r",
        seed=0,
        attempt=1,
        metrics=metrics or {},
        run_dir=None,
        tiny=False,
        spec=spec,
        **kw,
    )


def test_a_setting_that_differs_is_shown_per_row_and_batch_lr_falls_back_to_the_spec():
    spec = {
        "eval": {"temperature": 0.1, "top_p": 0.75, "max_new_tokens": 64, "stop_at_answer": True},
        "train": {"batch_size": 1, "accumulation": 32, "lr": 9e-3, "lr_mode": "scaled"},
    }
    greedy = {**spec, "eval": {**spec["eval"], "temperature": 0.0, "max_questions": 100}}
    rows = [
        RowRuns("a", None, {}, results=[result(spec)]),
        RowRuns("b", None, {}, results=[result(greedy)]),
        RowRuns("empty", None, {}),  # no results: not in the footer
    ]
    lines = protocol_lines(rows, "test/unparseable_pct")
    assert lines[0] == "split: test (a); test (first 100 questions only) (b)."
    assert lines[1] == (
        "decoding: temperature 0.1, top_p 0.75, max_new_tokens 64, stop_at_answer on (a); "
        "temperature 0, top_p 0.75, max_new_tokens 64, stop_at_answer on (b)."
    )
    assert "unparseable answers: not recorded" in lines[2]
    # LaVIN's scaling: 9e-3 * 32 / 256
    assert lines[6] == (
        "optimiser: effective batch 32, effective lr 0.001125 "
        "(from the spec, train.lr_mode=scaled)."
    )
    assert protocol_lines([RowRuns("x", None, {})], "m") == [
        "protocol: no successful runs, nothing recorded yet."
    ]


@pytest.mark.parametrize(
    "versions,device,text",
    [
        ({"torch": "2.14.1"}, "cpu", "torch 2.14.1, CUDA not recorded, CPU"),
        (
            {"torch": "2.14.1", "cuda": "12.8"},
            "NVIDIA H100",
            "torch 2.14.1, CUDA 12.8, NVIDIA H100 x1",
        ),
        (
            {"cuda": "12.8", "gpu_count": "8"},
            "NVIDIA H200",
            "torch not recorded, CUDA 12.8, NVIDIA H200 x8",
        ),
        ({}, None, "torch not recorded, CUDA not recorded, device not recorded"),
    ],
)
def test_fingerprint(versions, device, text):
    assert fingerprint(result({}, versions=versions, device=device)) == text
