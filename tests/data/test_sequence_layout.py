"""The exact LLM input layout of the seed code, with the real LLaMA-2 tokenizer.

Seed (anshkumar/LaVIN_2 ``util/datasets.py``, ``engine.py``, ``lavin/model.py``): the text is
``encode(prompt + answer, bos=True, eos=True)`` with the first ``len(encode(prompt, bos=True))``
positions masked; ``encode("Image: ")`` (3 ids) or ``encode("Image: N/A")`` (5 ids) goes after BOS,
the visual tokens after the image marker, u_m in front of it all. The seed's own docstring shows
"Response:" + "The answer is A." as ids ``5103, 29901, 1576, 1234, 338, 319`` (Response : The
▁answer ▁is ▁A): ``The``, not ``▁The``, because the target is tokenized joined to the prompt.

The shipped tokenizer file (``ablate/assets/llama2_tokenizer``) is a 32,000-piece SentencePiece BPE
of the same kind whose ids are not Meta's (``▁The`` is 415 there, 450 in Meta's), so these tests
pin token pieces, not ids.
"""

from __future__ import annotations

import pytest

from ablate.assets import load_llama2_tokenizer
from ablate.data.encoding import IGNORE_INDEX, build_layout, encode_pair, encode_prompt
from ablate.data.prompts import PromptPair

PROMPT = (
    "Question: Which of these states is farthest north?\nContext: N/A\n"
    "Options: (A) West Virginia (B) Louisiana (C) Arizona (D) Oklahoma\nResponse:"
)
TARGET = "The answer is A."


@pytest.fixture(scope="module")
def tok():
    return load_llama2_tokenizer()


def test_tokenizer_is_llama2_with_pad_equal_to_unk(tok):
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, tok.unk_token_id) == (1, 2, 0, 0)
    assert len(tok) == 32000


def test_image_question_layout_matches_the_seed(tok):
    layout = build_layout(tok, n_visual=6, max_seq_len=512)
    assert tok.convert_ids_to_tokens(list(layout.image_marker)) == ["▁Image", ":", "▁"]
    assert tok.convert_ids_to_tokens(list(layout.text_marker)) == ["▁Image", ":", "▁N", "/", "A"]
    ex = encode_pair(tok, PromptPair(PROMPT, TARGET), layout, has_image=True)
    pieces = tok.convert_ids_to_tokens
    assert pieces(ex.input_ids[:4]) == ["<s>", "▁Image", ":", "▁"] and ex.visual_at == 4
    answer = ex.input_ids[ex.prompt_len :]
    assert pieces(answer) == ["The", "▁answer", "▁is", "▁A", ".", "</s>"]  # as the seed shows
    assert pieces(ex.input_ids[ex.prompt_len - 2 : ex.prompt_len]) == ["Response", ":"]
    assert ex.labels[: ex.prompt_len] == [IGNORE_INDEX] * ex.prompt_len
    assert ex.labels[ex.prompt_len :] == answer
    # the generation prompt is the training prefix, so evaluation continues where training did
    prompt, cut = encode_prompt(tok, PROMPT, layout, has_image=True)
    assert not cut and prompt == ex.input_ids[: ex.prompt_len]


def test_text_only_question_says_no_image(tok):
    layout = build_layout(tok, n_visual=6, max_seq_len=512)
    ex = encode_pair(tok, PromptPair(PROMPT, TARGET), layout, has_image=False)
    assert tok.convert_ids_to_tokens(ex.input_ids[:6]) == ["<s>", "▁Image", ":", "▁N", "/", "A"]
    assert ex.input_ids[6] == tok("Question", add_special_tokens=False)["input_ids"][0]


def test_split_tokenisation_would_differ_at_the_boundary(tok):
    """ablate's earlier encoding (prompt and target apart) gives ▁The: not what the seed trained."""
    layout = build_layout(tok, n_visual=6, max_seq_len=512, tokenize="split")
    ex = encode_pair(tok, PromptPair(PROMPT, TARGET), layout, has_image=True)
    assert tok.convert_ids_to_tokens(ex.input_ids[ex.prompt_len]) == "▁The"


def test_real_prompts_keep_every_answer_token_within_512(tok, scienceqa_sample):
    """On real ScienceQA prompts, the seed's budget cuts only the longest lectures' tails."""
    from ablate.data.prompts import build_prompt
    from ablate.data.scienceqa import load_scienceqa

    layout = build_layout(tok, n_visual=6, max_seq_len=512)
    problems = load_scienceqa(scienceqa_sample, "test", image_placeholder=True)
    encoded = [encode_pair(tok, build_prompt(p), layout, p.has_image) for p in problems]
    pairs = zip(encoded, problems, strict=True)
    lengths = [1 + len(e.input_ids) + 6 * p.has_image for e, p in pairs]
    assert max(lengths) <= 512
    the = tok.convert_tokens_to_ids("The")
    assert all(e.input_ids[e.prompt_len] == the for e in encoded)  # "The", joined, every time
    assert sum(e.truncated for e in encoded) < len(encoded) * 0.1
