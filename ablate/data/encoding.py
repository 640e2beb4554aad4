"""Token ids and loss labels for a prompt/target pair, with counted truncation.

The loss covers the answer tokens only: prompt positions get the ignore label (-100, PyTorch's
``cross_entropy`` default), target positions and the final EOS get their ids. Prompt and target
are tokenized separately and concatenated, so the boundary is exact for any tokenizer and the ids
the model sees at generation time (the prompt alone) are exactly the training prefix.

Training sequences longer than ``max_seq_len`` are cut on the right, as LaVIN does; generation
prompts are cut on the left so that the options and "Response:" survive. Either way the number
of truncated samples is returned so the job can log it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ablate.data.prompts import PromptPair

IGNORE_INDEX = -100


@dataclass(frozen=True)
class EncodedExample:
    """One tokenized training example.

    Attributes:
        input_ids: BOS + prompt + target + EOS ids, at most ``max_seq_len`` long.
        labels: same length; IGNORE_INDEX on the prompt, the ids on target and EOS.
        prompt_len: number of leading positions that are prompt (BOS included).
        truncated: whether the full sequence was longer than ``max_seq_len``.
    """

    input_ids: list[int]
    labels: list[int]
    prompt_len: int
    truncated: bool


def text_ids(tokenizer: Any, text: str) -> list[int]:
    """Ids of ``text`` without special tokens (works for any Hugging Face tokenizer)."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def encode_pair(tokenizer: Any, pair: PromptPair, max_seq_len: int) -> EncodedExample:
    """Tokenize ``pair`` for teacher-forced training.

    Args:
        tokenizer: a Hugging Face tokenizer (BOS/EOS used when it defines them).
        pair: prompt and target text.
        max_seq_len: the longest sequence kept (right truncation).
    """
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    prompt = bos + text_ids(tokenizer, pair.prompt)
    target = text_ids(tokenizer, pair.target) + eos
    ids = prompt + target
    labels = [IGNORE_INDEX] * len(prompt) + target
    truncated = len(ids) > max_seq_len
    return EncodedExample(
        input_ids=ids[:max_seq_len],
        labels=labels[:max_seq_len],
        prompt_len=min(len(prompt), max_seq_len),
        truncated=truncated,
    )


def encode_prompt(tokenizer: Any, prompt: str, max_len: int) -> tuple[list[int], bool]:
    """Ids of a generation prompt (BOS + prompt), cut on the left to ``max_len``.

    Returns:
        The ids and whether they were truncated.
    """
    body = text_ids(tokenizer, prompt)
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    room = max(1, max_len - len(bos))
    return bos + body[-room:], len(body) > room


def encode_pairs(
    tokenizer: Any, pairs: Iterable[PromptPair], max_seq_len: int
) -> tuple[list[EncodedExample], int]:
    """Encode many pairs; returns the examples and how many were truncated (to log)."""
    examples = [encode_pair(tokenizer, p, max_seq_len) for p in pairs]
    return examples, sum(e.truncated for e in examples)
