"""Labels cover the answer tokens only; the layout budget and truncation are the seed's."""

from __future__ import annotations

import pytest

from ablate.data.encoding import (
    IGNORE_INDEX,
    SequenceLayout,
    build_layout,
    encode_pair,
    encode_pairs,
    encode_prompt,
)
from ablate.data.prompts import PromptPair


class CharTokenizer:
    """A minimal stand-in for a Hugging Face tokenizer: one id per character."""

    bos_token_id = 1
    eos_token_id = 2

    def __call__(self, text, add_special_tokens=False):
        assert add_special_tokens is False
        return {"input_ids": [10 + ord(c) % 200 for c in text]}


def ids(text):
    return CharTokenizer()(text)["input_ids"]


def test_labels_mask_the_prompt_and_keep_target_and_eos():
    tok = CharTokenizer()
    ex = encode_pair(tok, PromptPair("Q?", "The answer is A."), 100)
    assert ex.input_ids[0] == 1 and ex.input_ids[-1] == 2
    assert ex.prompt_len == 3  # BOS + "Q?"
    assert ex.labels[:3] == [IGNORE_INDEX] * 3
    assert ex.labels[3:] == ex.input_ids[3:]
    assert len(ex.labels) == len(ex.input_ids) == 3 + len("The answer is A.") + 1
    assert not ex.truncated


def test_truncation_cuts_right_and_is_counted():
    tok = CharTokenizer()
    pairs = [PromptPair("Q?", "short"), PromptPair("Q?", "x" * 50), PromptPair("y" * 40, "z")]
    examples, n_truncated = encode_pairs(tok, pairs, max_seq_len=20)
    assert n_truncated == 2
    assert all(len(e.input_ids) <= 20 for e in examples)
    assert examples[1].input_ids[:3] == [1, *ids("Q?")]
    assert examples[2].prompt_len == 20 and set(examples[2].labels) == {IGNORE_INDEX}


def test_generation_prompt_keeps_the_end():
    tok = CharTokenizer()
    got, cut = encode_prompt(tok, "abcdefResponse:", 10)
    assert cut and len(got) == 10 and got[0] == 1
    assert got[1:] == ids("Response:")
    got, cut = encode_prompt(tok, "ok", 10)
    assert not cut and got == [1, *ids("ok")]


def test_markers_come_after_bos_and_the_visual_tokens_after_the_marker():
    tok = CharTokenizer()
    layout = build_layout(tok, n_visual=6, max_seq_len=512)
    pair = PromptPair("Q?", "A.")
    image = encode_pair(tok, pair, layout, has_image=True)
    text = encode_pair(tok, pair, layout, has_image=False)
    assert image.input_ids == [1, *ids("Image: "), *ids("Q?A."), 2]
    assert text.input_ids == [1, *ids("Image: N/A"), *ids("Q?A."), 2]
    assert image.visual_at == 1 + len("Image: ") and text.visual_at == 1 + len("Image: N/A")
    assert image.labels[: image.visual_at + 2] == [IGNORE_INDEX] * (image.visual_at + 2)
    assert image.labels[image.visual_at + 2 :] == [*ids("A."), 2]
    prompt, _ = encode_prompt(tok, "Q?", layout, has_image=True)
    assert prompt == image.input_ids[: image.visual_at + 2]  # generation sees the training prefix


def test_without_markers_the_layout_is_bos_then_text():
    tok = CharTokenizer()
    layout = build_layout(tok, n_visual=6, max_seq_len=512, image_marker=False)
    ex = encode_pair(tok, PromptPair("Q?", "A."), layout, has_image=True)
    assert ex.input_ids == [1, *ids("Q?A."), 2] and ex.visual_at == 1


def test_truncation_counts_u_m_and_the_visual_tokens_as_the_seed_does():
    """The seed cuts [u_m, BOS, marker, V', text, EOS] to max_seq_len: text gets what is left."""
    tok = CharTokenizer()
    layout = build_layout(tok, n_visual=6, max_seq_len=40)
    pair = PromptPair("Q?", "x" * 60)
    image = encode_pair(tok, pair, layout, has_image=True)
    text = encode_pair(tok, pair, layout, has_image=False)
    assert 1 + len(image.input_ids) + 6 == 40 and image.truncated
    assert 1 + len(text.input_ids) == 40 and text.truncated
    assert image.input_ids[-1] != 2  # EOS is cut with the tail, as in the seed
    short = encode_pair(tok, PromptPair("Q?", "x" * 10), layout, has_image=True)
    assert not short.truncated and 1 + len(short.input_ids) + 6 <= 40


def test_joint_tokenisation_masks_the_prompts_own_length():
    """Joint: ids of prompt + target as one string; the first len(BOS + prompt) ids are masked."""

    class MergingTokenizer(CharTokenizer):
        """Merges ":T" into one id, as SentencePiece merges "Response:The"."""

        def __call__(self, text, add_special_tokens=False):
            out = []
            i = 0
            while i < len(text):
                if text.startswith(":T", i):
                    out.append(999)
                    i += 2
                else:
                    out.append(10 + ord(text[i]) % 200)
                    i += 1
            return {"input_ids": out}

    tok = MergingTokenizer()
    pair = PromptPair("Response:", "The")
    joint = encode_pair(tok, pair, SequenceLayout(max_seq_len=64, tokenize="joint"))
    split = encode_pair(tok, pair, SequenceLayout(max_seq_len=64, tokenize="split"))
    assert joint.input_ids == [1, *tok("Response:The")["input_ids"], 2]
    assert split.input_ids == [1, *tok("Response:")["input_ids"], *tok("The")["input_ids"], 2]
    assert joint.prompt_len == 1 + len("Response:")  # the seed's mask length, boundary and all


def test_a_budget_without_room_for_text_is_an_error():
    with pytest.raises(ValueError, match="max_seq_len=12"):
        build_layout(CharTokenizer(), n_visual=6, max_seq_len=12)
