r"""Prompt formats for ScienceQA: LaVIN's QCM-ALE (default) and LLaVA's CQM-A.

Both follow the ScienceQA reference code (lupantech/ScienceQA ``models/base_prompt.py``, copied
into LaVIN ``util/base_prompt.py`` and LLaVA ``scripts/convert_sqa_to_llava_base_prompt.py``):

* context = hint, plus the caption when captions are used, or "N/A" when both are empty;
* options = "(A) first (B) second ..." joined by single spaces;
* newlines inside lecture/solution are written as a literal backslash-n (as the reference does);
* double spaces are collapsed and both sides stripped.

QCM-ALE (LaVIN ``create_training_example``)::

    Question: {q}\\nContext: {c}\\nOptions: {o}\\nResponse:
    -> The answer is {L}. BECAUSE: {lecture} {solution}

LaVIN meant to drop a dangling "BECAUSE:" when lecture and solution are both empty, but its code
assigns the result to an unused variable, so the seed trains on "The answer is L. BECAUSE:". That is
the default here too; ``drop_empty_because=True`` drops it (the target then is "The answer is L.").

CQM-A (LLaVA's ScienceQA format)::

    Context: {c}\\nQuestion: {q}\\nOptions: {o}\\nAnswer:
    -> The answer is {L}.

Training puts loss on the target only (see :mod:`ablate.data.encoding`); generation is prompted
with the prompt alone and parsed with :func:`ablate.evaluation.answers.parse_answer`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ablate.data.problem import Problem

OPTION_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class PromptPair:
    """What the model reads (``prompt``) and what it should write (``target``)."""

    prompt: str
    target: str


def context_text(problem: Problem, use_caption: bool = False) -> str:
    """The hint (and caption, if asked), or "N/A" when there is none."""
    caption = problem.caption if use_caption else ""
    context = " ".join([problem.hint, caption]).strip()
    return context or "N/A"


def choice_text(problem: Problem) -> str:
    """Options as "(A) first (B) second ...", as in the reference code."""
    return " ".join(f"({OPTION_LETTERS[i]}) {c}" for i, c in enumerate(problem.choices))


def answer_letter(problem: Problem) -> str:
    """The letter of the correct option."""
    return OPTION_LETTERS[problem.answer]


def clean(text: str) -> str:
    """Collapse double spaces and strip, as the reference code does."""
    return text.replace("  ", " ").strip()


def qcm_ale(
    problem: Problem, use_caption: bool = False, drop_empty_because: bool = False
) -> PromptPair:
    """LaVIN's default ScienceQA format: answer, then lecture and solution."""
    lecture = problem.lecture.replace("\n", "\\n")
    solution = problem.solution.replace("\n", "\\n")
    prompt = (
        f"Question: {problem.question}\nContext: {context_text(problem, use_caption)}\n"
        f"Options: {choice_text(problem)}\nResponse:"
    )
    target = clean(f"The answer is {answer_letter(problem)}. BECAUSE: {lecture} {solution}")
    if drop_empty_because and target.endswith("BECAUSE:"):
        target = target[: -len("BECAUSE:")].strip()
    return PromptPair(clean(prompt), target)


def cqm_a(
    problem: Problem, use_caption: bool = False, drop_empty_because: bool = False
) -> PromptPair:
    """LLaVA's ScienceQA format: context first, answer only."""
    prompt = (
        f"Context: {context_text(problem, use_caption)}\nQuestion: {problem.question}\n"
        f"Options: {choice_text(problem)}\nAnswer:"
    )
    return PromptPair(clean(prompt), f"The answer is {answer_letter(problem)}.")


PROMPT_FORMATS: dict[str, Callable[[Problem, bool, bool], PromptPair]] = {
    "qcm-ale": qcm_ale,
    "cqm-a": cqm_a,
}


def build_prompt(
    problem: Problem,
    fmt: str = "qcm-ale",
    *,
    use_caption: bool = False,
    drop_empty_because: bool = False,
) -> PromptPair:
    """The prompt and target of ``problem`` in format ``fmt``.

    Args:
        problem: a loaded problem.
        fmt: a key of :data:`PROMPT_FORMATS` ("qcm-ale" or "cqm-a").
        use_caption: append the official caption to the context (off in LaVIN's runs).
        drop_empty_because: drop a dangling "BECAUSE:" (the seed keeps it).
    """
    try:
        builder = PROMPT_FORMATS[fmt]
    except KeyError:
        raise ValueError(
            f"prompt format {fmt!r} is unknown; allowed: {', '.join(PROMPT_FORMATS)}"
        ) from None
    if len(problem.choices) > len(OPTION_LETTERS):
        raise ValueError(f"problem {problem.pid!r} has {len(problem.choices)} choices; max 26")
    return builder(problem, use_caption, drop_empty_because)
