"""The official ScienceQA accuracy columns (NAT SOC LAN TXT IMG NO G1-6 G7-12 Avg).

The rules follow the official script, lupantech/ScienceQA ``tools/evaluate_acc.py``
(``get_scores``):

* NAT / SOC / LAN: ``subject`` is "natural science" / "social science" / "language science";
* TXT (``has_text``): ``hint`` is non-empty; IMG (``has_image``): ``image`` is non-empty;
  NO (``no_context``): neither a hint nor an image. TXT and IMG overlap (a question with both
  counts in both), NO is disjoint from them;
* G1-6: ``grade`` in grade1..grade6; G7-12: ``grade`` in grade7..grade12;
* Avg: correct answers over all questions; a column is correct / questions in that group, x100.

Differences, on purpose: the official script divides by zero for an empty group; we report NaN
with a count of 0. A question without a prediction (None: unparseable under the "wrong" policy,
or missing from the file) counts as wrong, as the official script would fail on it instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping

from ablate.data.problem import Problem
from ablate.evaluation.answers import resolve_unparseable

__all__ = ["COLUMNS", "accuracy_table", "column_members", "resolve_unparseable"]

COLUMNS = ("NAT", "SOC", "LAN", "TXT", "IMG", "NO", "G1-6", "G7-12", "Avg")
LOW_GRADES = frozenset(f"grade{i}" for i in range(1, 7))
HIGH_GRADES = frozenset(f"grade{i}" for i in range(7, 13))

COLUMN_RULES: dict[str, Callable[[Problem], bool]] = {
    "NAT": lambda p: p.subject == "natural science",
    "SOC": lambda p: p.subject == "social science",
    "LAN": lambda p: p.subject == "language science",
    "TXT": lambda p: p.has_hint,
    "IMG": lambda p: p.has_image,
    "NO": lambda p: not p.has_hint and not p.has_image,
    "G1-6": lambda p: p.grade in LOW_GRADES,
    "G7-12": lambda p: p.grade in HIGH_GRADES,
    "Avg": lambda p: True,
}


def column_members(problem: Problem) -> tuple[str, ...]:
    """The columns ``problem`` counts in (always includes "Avg")."""
    return tuple(col for col in COLUMNS if COLUMN_RULES[col](problem))


def accuracy_table(
    problems: Iterable[Problem], predictions: Mapping[str, int | None]
) -> dict[str, float]:
    """Accuracy per official column, in percent, plus counts.

    Args:
        problems: the questions scored (typically one split).
        predictions: pid -> predicted option index; None or a missing pid counts wrong.

    Returns:
        ``{col: percent}`` for every column of :data:`COLUMNS` (NaN for an empty group), then
        ``n_{col}`` (questions in the group), ``correct_{col}`` and ``n_unanswered`` (questions
        whose prediction is None or missing).
    """
    total = dict.fromkeys(COLUMNS, 0)
    correct = dict.fromkeys(COLUMNS, 0)
    unanswered = 0
    for problem in problems:
        pred = predictions.get(problem.pid)
        if pred is None:
            unanswered += 1
        hit = pred is not None and int(pred) == problem.answer
        for col in column_members(problem):
            total[col] += 1
            correct[col] += hit
    table: dict[str, float] = {
        col: (100.0 * correct[col] / total[col]) if total[col] else math.nan for col in COLUMNS
    }
    table.update({f"n_{col}": float(total[col]) for col in COLUMNS})
    table.update({f"correct_{col}": float(correct[col]) for col in COLUMNS})
    table["n_unanswered"] = float(unanswered)
    return table
