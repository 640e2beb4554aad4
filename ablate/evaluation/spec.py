"""The ``eval`` section of a run spec: generation settings and the unparseable-answer policy.

Defaults are LaVIN's ScienceQA evaluation settings (DESIGN.md section 5). No torch here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ablate.spec.base import SpecModel, nonsemantic


class EvalSpec(SpecModel):
    """How answers are generated and how unparseable ones are scored."""

    temperature: float = Field(0.1, ge=0.0)
    """Sampling temperature (0 means greedy)."""
    top_p: float = Field(0.75, gt=0.0, le=1.0)
    """Nucleus sampling mass."""
    max_new_tokens: int = Field(64, ge=1)
    """Generation budget per question; "The answer is X." comes first, so 64 is plenty."""
    stop_at_answer: bool = nonsemantic(True)
    """End a question's generation once "The answer is X." is in it: the parsed answers are the
    same as after ``max_new_tokens`` (the first match decides; tested), with ~7 instead of up to
    64 tokens per question. Only the raw text stored with the predictions gets shorter."""
    unparseable: Literal["wrong", "random"] = "wrong"
    """``wrong`` (LLaVA): an answer without "The answer is X." counts wrong; ``random`` (LaVIN):
    a seeded random choice replaces it. Either way the count is reported."""
    batch_size: int = Field(8, ge=1)
    """Questions generated together (left-padded, with KV cache)."""
    max_questions: int | None = Field(None, ge=1)
    """Evaluate only the first N questions of the split (debugging); recorded with the run."""
