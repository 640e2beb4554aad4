"""Batched answer generation over a split, answer parsing and scoring.

Questions are generated in batches of prompts of similar length (sorted by prompt length, then
left-padded), so little compute is spent on padding; the order of the batches is fixed, and every
batch gets its own seed derived from the run seed, so the same run reproduces the same sampled
answers. Each raw output is parsed ("The answer is X."); answers that do not parse are always
counted, and scored by the spec's policy: ``wrong`` (the default, LLaVA) or ``random`` (LaVIN, a
seeded random choice).

Per-question rows (pid, predicted index, raw output, whether it parsed, correct) are what a paired
comparison between two runs needs; :func:`write_predictions` stores them as JSONL beside the run.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablate.errors import JobCancelled
from ablate.evaluation.answers import ANSWER_PATTERN, parse_answer, resolve_unparseable
from ablate.evaluation.predictions import PredictionRecord, write_predictions_jsonl
from ablate.evaluation.scoring import COLUMNS, accuracy_table
from ablate.evaluation.spec import EvalSpec
from ablate.train.batches import Example, ImageSource, collate_layout


def _has_answer(text: str) -> bool:
    """Whether ``text`` already holds its first "The answer is X." (which decides the parse)."""
    return ANSWER_PATTERN.search(text) is not None


@dataclass(frozen=True)
class SplitEvaluation:
    """The outcome of evaluating one split.

    Attributes:
        split: split name (``val``, ``test``).
        rows: one :class:`~ablate.evaluation.predictions.PredictionRecord` per question, in the
            split's order (pid, pred after the unparseable policy, raw, parsed, correct).
        table: :func:`~ablate.evaluation.scoring.accuracy_table` output (percent 0-100, counts).
        n_unparseable: answers that did not parse.
        seconds: wall time of generation and scoring.
        generated_tokens: tokens sampled, all questions together (a row stops counting once it
            has its answer or EOS).
    """

    split: str
    rows: list[PredictionRecord]
    table: dict[str, float]
    n_unparseable: int
    seconds: float
    generated_tokens: int = 0

    def metrics(self) -> dict[str, float]:
        """``{split}/{column}`` accuracies plus ``{split}/unparseable`` (count) and its percent."""
        out = {
            f"{self.split}/{col}": float(self.table[col]) for col in COLUMNS if col in self.table
        }
        out[f"{self.split}/unparseable"] = float(self.n_unparseable)
        out[f"{self.split}/unparseable_pct"] = 100.0 * self.n_unparseable / max(len(self.rows), 1)
        out[f"{self.split}/n"] = float(len(self.rows))
        out[f"{self.split}/tokens_per_question"] = self.generated_tokens / max(len(self.rows), 1)
        return out


def evaluate_split(
    model: Any,
    problems: Sequence[Any],
    examples: Sequence[Example],
    spec: EvalSpec,
    *,
    split: str,
    seed: int,
    device: str,
    load_image: ImageSource,
    autocast: Callable[[], contextlib.AbstractContextManager] | None = None,
    max_questions: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> SplitEvaluation:
    """Generate, parse and score answers for ``problems``.

    Args:
        model: a ``MultimodalModel`` (``tokenizer``, ``generate``).
        problems: the split's ``Problem`` records (their order is the order of ``rows``).
        examples: encoded problems (``prompt_ids``), matched to ``problems`` by pid.
        spec: generation settings and the unparseable policy.
        split: name used in metric keys.
        seed: run seed (generation and the random fallback derive theirs from it).
        device: where the model lives.
        load_image: problem -> image (uint8 from the image cache: the model normalises it with
            its evaluation statistics).
        autocast: factory of the forward's autocast context (None: no autocast).
        max_questions: evaluate only this prefix of ``problems`` (None: ``spec.max_questions``).
        progress: called with ``(done, total)`` after every batch.
        should_stop: polled after every batch; when it returns True, :class:`JobCancelled` is
            raised (the caller's last checkpoint makes the next attempt start evaluating again).
    """
    import time

    start = time.perf_counter()
    limit = max_questions if max_questions is not None else spec.max_questions
    problems = list(problems)[:limit] if limit else list(problems)
    by_pid = {e.pid: e for e in examples}
    missing = [str(p.pid) for p in problems if str(p.pid) not in by_pid]
    if missing:
        raise ValueError(f"{split}: no encoded prompt for pid(s) {missing[:5]}")
    todo = [by_pid[str(p.pid)] for p in problems]
    order = sorted(range(len(todo)), key=lambda i: (len(todo[i].prompt_ids), i))
    raw: dict[str, str] = {}
    generated = 0
    pad_id = model.tokenizer.pad_token_id
    um_slot = not model.spec.isolate_modality_token
    was_training = model.training
    model.eval()
    try:
        for batch_no, start_i in enumerate(range(0, len(order), spec.batch_size)):
            chunk = [todo[i] for i in order[start_i : start_i + spec.batch_size]]
            batch = collate_layout(
                chunk, pad_id, load_image, len(model.taps), "left", um_slot, prompts=True
            )
            images = batch["images"].to(device) if batch["images"] is not None else None
            with autocast() if autocast is not None else contextlib.nullcontext():
                texts = model.generate_layout(
                    batch["layout"].to(device),
                    images,
                    max_new_tokens=spec.max_new_tokens,
                    temperature=spec.temperature,
                    top_p=spec.top_p,
                    seed=seed * 100_003 + batch_no,
                    stop=_has_answer if spec.stop_at_answer else None,
                )
            generated += model.generated_tokens
            for example, text in zip(chunk, texts, strict=True):
                raw[example.pid] = text
            if progress is not None:
                progress(min(start_i + spec.batch_size, len(order)), len(order))
            if should_stop is not None and should_stop():
                raise JobCancelled(f"stopped while evaluating {split}")
    finally:
        model.train(was_training)
    rng = random.Random(seed)
    rows: list[PredictionRecord] = []
    predictions: dict[str, int | None] = {}
    n_unparseable = 0
    for problem, example in zip(problems, todo, strict=True):
        parsed = parse_answer(raw[example.pid], example.n_choices)
        if parsed is None:
            n_unparseable += 1
        pred = resolve_unparseable(parsed, example.n_choices, spec.unparseable, rng)
        predictions[example.pid] = pred
        rows.append(
            PredictionRecord(
                pid=example.pid,
                pred=pred,
                raw=raw[example.pid],
                parsed=parsed is not None,
                correct=pred is not None and pred == problem.answer,
            )
        )
    table = accuracy_table(problems, predictions)
    seconds = time.perf_counter() - start
    return SplitEvaluation(split, rows, table, n_unparseable, seconds, generated)


def write_predictions(path: Path, evaluation: SplitEvaluation) -> Path:
    """Write the per-question rows as JSONL (atomically), one ``PredictionRecord`` a line.

    The file is readable by ``ablate score`` (its ``pred``/``parsed`` fields) and by paired tests.
    """
    write_predictions_jsonl(path, evaluation.rows)
    return path
