"""Prediction files in every supported form, and the score report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ablate.evaluation.predictions import (
    PredictionRecord,
    load_predictions,
    read_predictions,
    score_predictions_file,
    write_predictions_jsonl,
)


@pytest.fixture
def data_root(tmp_path) -> Path:
    """Four test questions (hint+image, hint, image, neither) and one train question."""
    root = tmp_path / "sqa"
    root.mkdir()
    base = {"question": "q", "choices": ["a", "b", "c"], "grade": "grade4", "lecture": "",
            "solution": "", "subject": "natural science", "split": "test"}  # fmt: skip
    problems = {
        "1": {**base, "answer": 0, "hint": "H", "image": "image.png"},
        "2": {**base, "answer": 1, "hint": "H", "image": None, "subject": "language science"},
        "3": {**base, "answer": 2, "hint": "", "image": "image.png", "grade": "grade9"},
        "4": {**base, "answer": 0, "hint": "", "image": None, "subject": "social science"},
        "5": {**base, "answer": 0, "hint": "", "image": None, "split": "train"},
    }
    (root / "problems.json").write_text(json.dumps(problems))
    (root / "pid_splits.json").write_text(
        json.dumps({"train": ["5"], "test": ["1", "2", "3", "4"]})
    )
    return root


def test_mapping_and_official_forms(tmp_path, data_root):
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps({"1": 0, "2": "1", "3": None, "4": 2}))
    official = tmp_path / "official.json"
    official.write_text(json.dumps({"acc": 50.0, "results": {"1": 0, "2": 1, "3": 0, "4": 2}}))
    assert load_predictions(plain) == {"1": 0, "2": 1, "3": None, "4": 2}
    for path in (plain, official):
        report = score_predictions_file(path, data_root, "test")  # no images needed to score
        assert report.columns["Avg"] == 50.0
        assert report.n_missing == 0 and report.n_unknown_pids == 0
    assert read_predictions(official).form == "official"


def test_jsonl_with_raw_outputs_is_parsed_with_choice_counts(tmp_path, data_root):
    path = tmp_path / "llava.jsonl"
    lines = [
        {"question_id": "1", "text": "The answer is A."},
        {"pid": "2", "raw": "The answer is B. BECAUSE: ..."},
        {"pid": "3", "output": "The answer is D."},  # only 3 choices: unparseable
        {"pid": "9", "raw": "The answer is A."},  # not in the split
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    report = score_predictions_file(path, data_root, "test")
    assert report.columns["Avg"] == 50.0
    assert report.n_unparseable == 1 and report.n_missing == 1 and report.n_unknown_pids == 1
    text = report.to_markdown()
    assert text.splitlines()[0] == "| NAT | SOC | LAN | TXT | IMG | NO | G1-6 | G7-12 | Avg |"
    assert "| 50.00 | 0.00 | 100.00 | 100.00 | 50.00 | 0.00 | 66.67 | 0.00 | 50.00 |" in text
    assert (
        "1 missing (scored wrong), 1 unparseable, 0 out of range (scored wrong), 1 unknown pids"
        in text
    )


def test_run_records_round_trip(tmp_path, data_root):
    path = tmp_path / "predictions.jsonl"
    records = [
        PredictionRecord("1", 0, "The answer is A.", True, True),
        PredictionRecord("2", None, "garbage", False, False),
        PredictionRecord("3", 1, "garbage", False, False),  # random fallback picked 1
        PredictionRecord("4", 0, "The answer is A.", True, True),
    ]
    assert write_predictions_jsonl(path, records) == 4
    loaded = read_predictions(path)
    assert loaded.predictions == {"1": 0, "2": None, "3": 1, "4": 0}
    assert loaded.n_unparseable == 2
    report = score_predictions_file(path, data_root)
    assert report.columns["Avg"] == 50.0 and report.n_unparseable == 2
    assert report.to_dict()["columns"]["Avg"] == 50.0


def test_empty_group_prints_a_dash(tmp_path, data_root):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"5": 0}))
    report = score_predictions_file(path, data_root, "train")
    assert report.columns["Avg"] == 100.0
    assert "| - |" in report.to_markdown()  # no social science question in train
    assert report.to_dict()["columns"]["SOC"] is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"1": "A"}', r"prediction 'A' is not an option index"),
        ("[1, 2]", r"expected \{pid: index\}"),
        ('{"pid": "1", "foo": 1}\n{"pid": "2"}', r"expected 'pred' or a raw output"),
        ('{"pid": "1", "pred": 0}\n{oops', r":2: not valid JSON"),
        ('{"x": 1}\n{"y": 2}', r":1: expected an object with 'pid'"),
    ],
)
def test_bad_prediction_files_are_explained(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_predictions(path)


def test_missing_predictions_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="predictions file does not exist"):
        load_predictions(tmp_path / "nope.json")
