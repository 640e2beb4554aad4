"""Batched evaluation: parsing, the unparseable policy, order, stop requests (scripted model)."""

from __future__ import annotations

import pytest
import torch

from ablate.data.scienceqa import load_scienceqa
from ablate.errors import JobCancelled
from ablate.evaluation.generate import evaluate_split, write_predictions
from ablate.evaluation.predictions import read_predictions
from ablate.evaluation.spec import EvalSpec
from ablate.model.spec import ModelSpec
from ablate.model.twins import build_twin_tokenizer
from ablate.train.batches import encode_problems


class ScriptedModel(torch.nn.Module):
    """Answers by pid: the prompt's token ids identify the question; records every batch."""

    spec = ModelSpec(llm="tiny-llama2", vision="tiny-diht")
    taps: list[int] = []  # no visual slots: a row's real tokens are the prompt's ids

    def __init__(self, tokenizer, answers: dict[tuple[int, ...], str]):
        super().__init__()
        self.tokenizer = tokenizer
        self.answers = answers
        self.batches: list[dict] = []
        self.generated_tokens = 0

    def generate_layout(self, layout, images=None, **kwargs):
        assert layout.layout == "left"
        self.batches.append({"width": layout.input_ids.shape[1], **kwargs})
        out = []
        for row, mask in zip(layout.input_ids, layout.attention_mask, strict=True):
            out.append(self.answers[tuple(row[mask.bool()].tolist())])
        self.generated_tokens = 3 * len(out)
        return out


@pytest.fixture(scope="module")
def setup(scienceqa_sample):
    tokenizer = build_twin_tokenizer()
    problems = load_scienceqa(scienceqa_sample, "val", image_placeholder=True)[:20]
    examples, _ = encode_problems(problems, tokenizer, "qcm-ale", 4096)
    return tokenizer, problems, examples


def _model(tokenizer, problems, examples, garbage_every=4):
    answers = {}
    for i, (problem, example) in enumerate(zip(problems, examples, strict=True)):
        if i % garbage_every == 0:
            text = "I am not sure."
        else:
            text = f"The answer is {chr(65 + problem.answer)}. BECAUSE: ..."
        answers[example.prompt_ids] = text
    return ScriptedModel(tokenizer, answers)


def _evaluate(setup, spec, seed=0, **kwargs):
    tokenizer, problems, examples = setup
    model = _model(tokenizer, problems, examples)

    def loader(problem):
        return torch.zeros(3, 4, 4)

    result = evaluate_split(
        model, problems, examples, spec, split="val", seed=seed, device="cpu",
        load_image=loader, **kwargs,
    )  # fmt: skip
    return model, result


def test_unparseable_counted_wrong_by_default(setup):
    _, problems, _ = setup
    model, result = _evaluate(setup, EvalSpec(batch_size=6, max_new_tokens=8))
    assert result.n_unparseable == 5  # every 4th of 20
    assert [r.pid for r in result.rows] == [p.pid for p in problems]  # split order kept
    assert sum(r.correct for r in result.rows) == 15
    assert result.table["Avg"] == pytest.approx(75.0)
    assert result.metrics()["val/unparseable"] == 5
    assert all(r.pred is None and not r.parsed for r in result.rows[::4])
    # batched by prompt length, with the spec's generation settings and per-batch seeds
    assert len(model.batches) == 4
    assert {b["max_new_tokens"] for b in model.batches} == {8}
    assert {b["temperature"] for b in model.batches} == {0.1}
    assert {b["top_p"] for b in model.batches} == {0.75}
    assert len({b["seed"] for b in model.batches}) == 4


def test_random_fallback_is_seeded_and_still_counted(setup):
    spec = EvalSpec(batch_size=6, unparseable="random")
    _, first = _evaluate(setup, spec, seed=3)
    _, again = _evaluate(setup, spec, seed=3)
    assert first.n_unparseable == 5
    assert all(r.pred is not None for r in first.rows)
    assert [r.pred for r in first.rows] == [r.pred for r in again.rows]
    preds = {seed: [r.pred for r in _evaluate(setup, spec, seed=seed)[1].rows] for seed in range(6)}
    assert len({tuple(p) for p in preds.values()}) > 1


def test_prefix_and_stop_request(setup):
    _, result = _evaluate(setup, EvalSpec(batch_size=4, max_questions=7))
    assert len(result.rows) == 7
    calls = iter([False, True])
    with pytest.raises(JobCancelled):
        _evaluate(setup, EvalSpec(batch_size=4), should_stop=lambda: next(calls))


def test_predictions_file_round_trip(setup, tmp_path):
    _, result = _evaluate(setup, EvalSpec(batch_size=6))
    path = write_predictions(tmp_path / "predictions_val.jsonl", result)
    loaded = read_predictions(path, None)
    assert loaded.predictions == {r.pid: r.pred for r in result.rows}
    assert loaded.n_unparseable == 5
