"""Answer parsing follows LaVIN/LLaVA's regex; the unparseable policy is seeded."""

from __future__ import annotations

import random

import pytest

from ablate.evaluation.answers import parse_answer, resolve_unparseable


@pytest.mark.parametrize(
    ("text", "n", "expected"),
    [
        ("The answer is A.", 4, 0),
        ("The answer is C. BECAUSE: lecture", 4, 2),
        ("blah The answer is B, surely", 2, 1),  # any character may follow the letter
        ("The answer is D. The answer is A.", 4, 3),  # first match wins
        ("The answer is E.", 4, None),  # beyond the choices
        ("The answer is E.", None, 4),  # no range check without a question
        ("the answer is A.", 4, None),  # case-sensitive, as the reference
        ("The answer is A", 4, None),  # the reference needs a character after the letter
        ("Answer: (B)", 4, None),
        ("", 3, None),
    ],
)
def test_parse_answer(text, n, expected):
    assert parse_answer(text, n) == expected


def test_unparseable_policies():
    rng = random.Random(0)
    assert resolve_unparseable(2, 4, "wrong", rng) == 2
    assert resolve_unparseable(None, 4, "wrong", rng) is None
    picks = [resolve_unparseable(None, 3, "random", random.Random(5)) for _ in range(3)]
    assert len(set(picks)) == 1 and 0 <= picks[0] < 3  # seeded: same pick
    rng = random.Random(1)
    assert {resolve_unparseable(None, 3, "random", rng) for _ in range(50)} == {0, 1, 2}
    with pytest.raises(ValueError, match="allowed: wrong, random"):
        resolve_unparseable(None, 3, "skip", rng)
