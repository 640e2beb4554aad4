"""The official ScienceQA column rules, on hand-checked cases and against the official logic."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from ablate.data.problem import Problem
from ablate.data.scienceqa import load_scienceqa
from ablate.evaluation.scoring import COLUMNS, accuracy_table, column_members


def problem(pid, *, hint="", image=False, subject="natural science", grade="grade3", answer=0):
    return Problem(
        pid=pid,
        question="q",
        choices=("a", "b", "c"),
        answer=answer,
        hint=hint,
        image=Path("image.png") if image else None,
        subject=subject,
        grade=grade,
    )


HAND = [
    problem("both", hint="H", image=True, subject="natural science", grade="grade1"),
    problem("hint", hint="H", subject="social science", grade="grade6"),
    problem("img", image=True, subject="natural science", grade="grade7"),
    problem("none", subject="social science", grade="grade12"),
]


def test_context_columns_overlap_as_official():
    assert column_members(HAND[0]) == ("NAT", "TXT", "IMG", "G1-6", "Avg")
    assert column_members(HAND[1]) == ("SOC", "TXT", "G1-6", "Avg")
    assert column_members(HAND[2]) == ("NAT", "IMG", "G7-12", "Avg")
    assert column_members(HAND[3]) == ("SOC", "NO", "G7-12", "Avg")


def test_hand_checked_table():
    # right: both, none; wrong: hint (pred 1), img (unparseable -> None)
    table = accuracy_table(HAND, {"both": 0, "hint": 1, "img": None, "none": 0})
    assert table["NAT"] == 50.0 and table["SOC"] == 50.0
    assert math.isnan(table["LAN"]) and table["n_LAN"] == 0  # a subject with no questions
    assert table["TXT"] == 50.0 and table["n_TXT"] == 2  # both + hint
    assert table["IMG"] == 50.0 and table["n_IMG"] == 2  # both + img
    assert table["NO"] == 100.0 and table["n_NO"] == 1
    assert table["G1-6"] == 50.0 and table["G7-12"] == 50.0
    assert table["Avg"] == 50.0 and table["n_Avg"] == 4
    assert table["n_unanswered"] == 1


def test_missing_prediction_counts_wrong():
    table = accuracy_table(HAND, {"both": 0})
    assert table["Avg"] == 25.0 and table["n_unanswered"] == 3


def official_scores(problems_json: dict, split: str, results: dict[str, int]) -> dict[str, float]:
    """The rules of lupantech/ScienceQA tools/evaluate_acc.py, re-stated in plain Python."""
    rows = [(pid, p) for pid, p in problems_json.items() if p["split"] == split]

    def acc(cond):
        sel = [(pid, p) for pid, p in rows if cond(p)]
        return 100 * sum(results[pid] == p["answer"] for pid, p in sel) / len(sel)

    low = [f"grade{i}" for i in range(1, 7)]
    high = [f"grade{i}" for i in range(7, 13)]
    return {
        "NAT": acc(lambda p: p["subject"] == "natural science"),
        "SOC": acc(lambda p: p["subject"] == "social science"),
        "LAN": acc(lambda p: p["subject"] == "language science"),
        "TXT": acc(lambda p: bool(p["hint"])),
        "IMG": acc(lambda p: bool(p["image"])),
        "NO": acc(lambda p: not p["hint"] and not p["image"]),
        "G1-6": acc(lambda p: p["grade"] in low),
        "G7-12": acc(lambda p: p["grade"] in high),
        "Avg": acc(lambda p: True),
    }


def test_matches_official_rules_on_the_real_sample(scienceqa_sample):
    raw = json.loads((scienceqa_sample / "problems.json").read_text())
    problems = load_scienceqa(scienceqa_sample, "test", image_placeholder=True)
    rng = random.Random(0)
    results = {p.pid: rng.randrange(len(p.choices)) for p in problems}
    ours = accuracy_table(problems, results)
    official = official_scores(raw, "test", results)
    for col in COLUMNS:
        assert ours[col] == pytest.approx(official[col], abs=1e-9), col
    assert 0 < ours["Avg"] < 100
    assert ours["n_TXT"] + ours["n_IMG"] + ours["n_NO"] > ours["n_Avg"]  # TXT/IMG overlap
