"""The ``eval`` section of a run spec: generation settings and the unparseable-answer policy.

Defaults are LaVIN's ScienceQA evaluation settings (DESIGN.md section 5). No torch here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ablate.spec.base import SpecModel


class EvalSpec(SpecModel):
    """How answers are generated and how unparseable ones are scored."""

    temperature: float = Field(0.1, ge=0.0)
    """Sampling temperature (0 means greedy)."""
    top_p: float = Field(0.75, gt=0.0, le=1.0)
    """Nucleus sampling mass."""
    max_new_tokens: int = Field(64, ge=1)
    """Generation budget per question; "The answer is X." comes first, so 64 is plenty."""
    unparseable: Literal["wrong", "random"] = "wrong"
    """``wrong`` (LLaVA): an answer without "The answer is X." counts wrong; ``random`` (LaVIN):
    a seeded random choice replaces it. Either way the count is reported."""
    batch_size: int = Field(8, ge=1)
    """Questions generated together (left-padded, with KV cache)."""
    max_questions: int | None = Field(None, ge=1)
    """Evaluate only the first N questions of the split (debugging); recorded with the run."""
