"""Parse "The answer is X." out of generated text, as LaVIN and LLaVA do.

Both use the regex ``The answer is ([A-Z]).`` (``.`` unescaped, so any character may follow the
letter) on the generated text and take the first match. A letter beyond the question's choices
is treated like no match: it cannot be scored as any option.
"""

from __future__ import annotations

import random
import re

ANSWER_PATTERN = re.compile(r"The answer is ([A-Z]).")


def parse_answer(text: str, n_choices: int | None) -> int | None:
    """The 0-based option index announced in ``text``, or None when there is none.

    Args:
        text: the generated text.
        n_choices: number of options of the question; None skips the range check.
    """
    match = ANSWER_PATTERN.search(text)
    if match is None:
        return None
    index = ord(match.group(1)) - ord("A")
    if n_choices is not None and index >= n_choices:
        return None
    return index


def resolve_unparseable(
    pred: int | None, n_choices: int, policy: str, rng: random.Random
) -> int | None:
    """Apply the unparseable-answer policy to one parsed prediction.

    Args:
        pred: the parsed index, or None when the output could not be parsed.
        n_choices: number of options of the question.
        policy: "wrong" (LLaVA: keep None, scored wrong) or "random" (LaVIN: a random option).
        rng: the seeded generator used by "random", so re-runs pick the same options.
    """
    if pred is not None:
        return pred
    if policy == "wrong":
        return None
    if policy == "random":
        return rng.randrange(n_choices)
    raise ValueError(f"unparseable policy {policy!r} is unknown; allowed: wrong, random")
