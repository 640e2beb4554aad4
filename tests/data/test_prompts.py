"""Prompt builders: exact LaVIN QCM-ALE and LLaVA CQM-A strings."""

from __future__ import annotations

import pytest

from ablate.data.problem import Problem
from ablate.data.prompts import build_prompt


def problem(**kw) -> Problem:
    base = dict(
        pid="7",
        question="Which is a fruit?",
        choices=("apple", "stone", "sand"),
        answer=2,
        hint="",
        image=None,
        subject="natural science",
        grade="grade3",
        lecture="Fruits grow.\nThey have seeds.",
        solution="Sand  is not.",
        caption="A photo of food.",
    )
    base.update(kw)
    return Problem(**base)


def test_qcm_ale_matches_lavin_format():
    pair = build_prompt(problem(), "qcm-ale")
    assert pair.prompt == (
        "Question: Which is a fruit?\nContext: N/A\n"
        "Options: (A) apple (B) stone (C) sand\nResponse:"
    )
    assert pair.target == "The answer is C. BECAUSE: Fruits grow.\\nThey have seeds. Sand is not."


def test_qcm_ale_context_is_hint_and_optional_caption():
    p = problem(hint="Look closely.")
    assert "\nContext: Look closely.\n" in build_prompt(p).prompt
    with_caption = build_prompt(p, use_caption=True).prompt
    assert "\nContext: Look closely. A photo of food.\n" in with_caption


def test_empty_explanation_keeps_the_seeds_dangling_because_unless_asked():
    """The seed meant to drop it but assigned the result to an unused variable: it trains on it."""
    pair = build_prompt(problem(lecture="", solution=""), "qcm-ale")
    assert pair.target == "The answer is C. BECAUSE:"
    pair = build_prompt(problem(lecture="", solution=""), "qcm-ale", drop_empty_because=True)
    assert pair.target == "The answer is C."


def test_cqm_a_matches_llava_order():
    pair = build_prompt(problem(hint="A hint."), "cqm-a")
    assert pair.prompt == (
        "Context: A hint.\nQuestion: Which is a fruit?\n"
        "Options: (A) apple (B) stone (C) sand\nAnswer:"
    )
    assert pair.target == "The answer is C."


def test_unknown_format_lists_allowed():
    with pytest.raises(ValueError, match="allowed: qcm-ale, cqm-a"):
        build_prompt(problem(), "qcm-a")
