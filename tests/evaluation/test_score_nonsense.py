"""``ablate score`` on nonsense: refused with exit 2, or scored with what was off counted apart.

Reproduces issue 18 item 8: indices 99 or -1 scored as plain wrong answers with "0 unparseable"
and no note; an empty file scored as "361 missing" with exit 0; ``{"x": 1}`` was read as a map.
Every case runs the console-script entry point (``ablate.cli.main``) on a file written here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from ablate import cli

BASE = {"question": "q", "hint": "", "image": None, "subject": "natural science",
        "grade": "grade4", "split": "test"}  # fmt: skip
PROBLEMS = {
    "1": {**BASE, "choices": ["a", "b"], "answer": 0},
    "2": {**BASE, "choices": ["a", "b", "c"], "answer": 2},
    "3": {**BASE, "choices": ["a", "b", "c", "d"], "answer": 1},
    "9": {**BASE, "choices": ["a", "b"], "answer": 1, "split": "train"},
}


@pytest.fixture
def data(tmp_path) -> Path:
    root = tmp_path / "sqa"
    root.mkdir()
    (root / "problems.json").write_text(json.dumps(PROBLEMS))
    (root / "pid_splits.json").write_text(json.dumps({"train": ["9"], "test": ["1", "2", "3"]}))
    return root


def score(monkeypatch, capsys, tmp_path, data, content: str, *flags: str) -> tuple[int, str]:
    """Write ``content`` as a predictions file, run ``ablate score`` on it: exit code, output."""
    path = tmp_path / "preds.json"
    path.write_text(content, encoding="utf-8")
    monkeypatch.setattr(sys, "argv", ["ablate", "score", str(path), "--data", str(data), *flags])
    code = 0
    try:
        cli.main()
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    out = capsys.readouterr()
    return code, out.out + out.err


REFUSED = {
    "empty": ("", "empty file"),
    "blank_lines": ("\n  \n\t\n", "empty file"),
    "empty_mapping": ("{}", "holds no predictions (mapping)"),
    "empty_official": ('{"acc": 0, "results": {}}', "holds no predictions (official)"),
    "unknown_pid_map": ('{"x": 1}', "none of its 1 pids ('x') is a question of split 'test'"),
    "other_split_only": ('{"9": 0}', "none of its 1 pids ('9') is a question of split 'test'"),
    "unknown_jsonl": (
        '{"pid": "a", "pred": 0}\n{"pid": "b", "pred": 1}\n{"pid": "c", "pred": 1}\n'
        '{"pid": "d", "pred": 1}\n',
        "none of its 4 pids ('a', 'b', 'c', ...) is a question of split 'test'",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_nonsense_files_are_refused_with_exit_2(case, tmp_path, monkeypatch, capsys, data):
    content, message = REFUSED[case]
    code, out = score(monkeypatch, capsys, tmp_path, data, content)
    assert code == 2, out
    assert out.startswith("error: ") and "preds.json" in out, out
    assert message in out, out
    assert "expected {pid: index}" in out, out  # and what is allowed
    assert "Traceback" not in out and "|" not in out, out  # no table printed


def test_out_of_range_indices_are_counted_apart(tmp_path, monkeypatch, capsys, data):
    code, out = score(monkeypatch, capsys, tmp_path, data, '{"1": 99, "2": -1, "3": 1}')
    assert code == 0, out
    assert "2 out of range (scored wrong)" in out and "0 unparseable" in out, out
    assert "note: 2 predictions are not an option of their question" in out, out
    assert "'1': 99, '2': -1" in out, out
    assert "| 33.33 |" in out  # only pid 3 is right


def test_unknown_pids_are_counted_apart_and_ignored(tmp_path, monkeypatch, capsys, data):
    content = '{"1": 0, "2": 2, "x": 1, "9": 1}'  # "9" is a train question
    code, out = score(monkeypatch, capsys, tmp_path, data, content)
    assert code == 0, out
    assert "1 missing (scored wrong)" in out and "2 unknown pids (not in the split" in out, out
    assert "note: 2 pids are not questions of split 'test' ('x', '9'); ignored" in out, out


def test_json_output_carries_the_counts_and_notes(tmp_path, monkeypatch, capsys, data):
    content = '{"1": 5, "2": 2, "3": 1, "zz": 0}'
    code, out = score(monkeypatch, capsys, tmp_path, data, content, "--json")
    assert code == 0, out
    report = json.loads(out)
    assert report["n_out_of_range"] == 1 and report["n_unknown_pids"] == 1, report
    assert report["n_missing"] == 0 and report["n_predictions"] == 4, report
    assert len(report["notes"]) == 2, report


def test_raw_outputs_naming_a_missing_option_stay_unparseable(tmp_path, monkeypatch, capsys, data):
    lines = [{"pid": "1", "raw": "The answer is C."}, {"pid": "2", "raw": "The answer is C."}]
    content = "\n".join(json.dumps(line) for line in lines) + "\n"
    code, out = score(monkeypatch, capsys, tmp_path, data, content)
    assert code == 0, out
    assert "1 unparseable, 0 out of range" in out, out  # C is no option of pid 1: not parsed
