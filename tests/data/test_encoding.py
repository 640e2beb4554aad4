"""Labels cover the answer tokens only; truncation is counted."""

from __future__ import annotations

from ablate.data.encoding import IGNORE_INDEX, encode_pair, encode_pairs, encode_prompt
from ablate.data.prompts import PromptPair


class CharTokenizer:
    """A minimal stand-in for a Hugging Face tokenizer: one id per character."""

    bos_token_id = 1
    eos_token_id = 2

    def __call__(self, text, add_special_tokens=False):
        assert add_special_tokens is False
        return {"input_ids": [10 + ord(c) % 200 for c in text]}


def test_labels_mask_the_prompt_and_keep_target_and_eos():
    tok = CharTokenizer()
    ex = encode_pair(tok, PromptPair("Q?", "The answer is A."), max_seq_len=100)
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
    assert examples[1].input_ids[:3] == [1, *tok("Q?")["input_ids"]]
    assert examples[2].prompt_len == 20 and set(examples[2].labels) == {IGNORE_INDEX}


def test_generation_prompt_keeps_the_end():
    tok = CharTokenizer()
    ids, cut = encode_prompt(tok, "abcdefResponse:", max_len=10)
    assert cut and len(ids) == 10 and ids[0] == 1
    assert ids[1:] == tok("Response:")["input_ids"]
    ids, cut = encode_prompt(tok, "ok", max_len=10)
    assert not cut and ids == [1, *tok("ok")["input_ids"]]
