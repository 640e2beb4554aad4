"""Stopping a row once its answer is there leaves every row's text a prefix of the full one."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st
from model_helpers import text_batch

from ablate.evaluation.answers import parse_answer
from ablate.evaluation.generate import _has_answer

PROMPTS = ["Question: Which is north? Response:", "Q? Response:", "Options: (A) a (B) b Response:"]


def test_stopped_rows_are_prefixes_and_other_rows_keep_their_samples(make_model):
    torch.manual_seed(0)
    mm = make_model({"name": "bottleneck"}).eval()
    ids, mask, _ = text_batch(mm.tokenizer, PROMPTS, padding_side="left")
    images, has_image = torch.randn(3, 3, 64, 64), torch.tensor([True, False, True])
    calls = []
    hook = mm.llm.register_forward_hook(lambda *_: calls.append(1))
    kwargs = {"max_new_tokens": 12, "temperature": 1.0, "top_p": 0.9, "seed": 7}
    full = mm.generate(ids, mask, images, has_image, **kwargs)
    n_full, calls[:] = len(calls), []
    stopped = mm.generate(ids, mask, images, has_image, stop=lambda t: len(t) >= 6, **kwargs)
    hook.remove()
    assert len(calls) < n_full  # fewer decode steps
    for whole, cut in zip(full, stopped, strict=True):
        assert whole.startswith(cut)
        assert len(cut) >= 6 or cut == whole


@given(
    st.text(alphabet="The answrisABC. xyz", max_size=40),
    st.sampled_from("ABCDE"),
    st.text(alphabet="The answrisABC. xyz", max_size=40),
)
def test_the_first_prefix_holding_an_answer_parses_as_the_whole_text(head, letter, tail):
    text = f"{head}The answer is {letter}.{tail}"
    cut = next(text[:n] for n in range(len(text) + 1) if _has_answer(text[:n]))
    assert parse_answer(cut, 4) == parse_answer(text, 4)
