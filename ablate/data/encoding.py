"""Token ids and loss labels of one LLM input, laid out and truncated as the seed code does.

The LLM input of the reference code (anshkumar/LaVIN_2 ``util/datasets.py``, ``engine.py``,
``lavin/model.py::insert_image_embeds``; unchanged from LaVIN) is::

    image question:     [u_m, BOS, "Image: ",    V' x n_visual, prompt + target, EOS]
    text-only question: [u_m, BOS, "Image: N/A",                prompt + target, EOS]

The marker tokens come from tokenizing ``"Image: "`` and ``"Image: N/A"`` without BOS/EOS (3 and 5
LLaMA tokens), so a text-only question carries an explicit "no image" signal. This module builds
the text part ``[BOS, marker, prompt + target, EOS]`` and says where the model inserts the visual
tokens (``visual_at``); the model prepends u_m.

Tokenisation (``joint``, the reference): prompt and target are tokenized as ONE string, and the
first ``len(BOS + tokenize(prompt))`` positions are masked. With SentencePiece this matters: the
prompt ends in "Response:" and the target starts "The answer", so the joint string gives ``The``
where a separate encoding gives ``▁The`` (tests/data/test_sequence_layout.py pins it with the real
LLaMA-2 tokenizer). ``split`` tokenizes them apart (ablate's earlier behaviour).

Truncation as the reference: the whole assembled sequence, u_m and the visual tokens included, is
cut on the right to ``max_seq_len`` (the seed cuts the text to 512, then the sequence after
inserting the visual tokens, then again after prepending u_m: all tail cuts, so one budget does
it). Generation prompts ``[BOS, marker, prompt]`` are cut on the left of the prompt instead, so the
options and ``Response:`` survive (the seed cuts generation prompts on the right; prompts that long
do not occur in ScienceQA at 512). Every cut is counted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from ablate.data.prompts import PromptPair

IGNORE_INDEX = -100
IMAGE_MARKER = "Image: "
NO_IMAGE_MARKER = "Image: N/A"


@dataclass(frozen=True)
class SequenceLayout:
    """How text, markers and visual tokens are laid out for one model and tokenizer.

    Attributes:
        image_marker: ids of ``"Image: "`` (empty without markers); V' follows it.
        text_marker: ids of ``"Image: N/A"`` for text-only questions (empty without markers).
        n_visual: visual tokens V' per image (the number of tapped ViT blocks).
        max_seq_len: length limit of the whole LLM input, u_m and V' included.
        tokenize: ``joint`` (the reference: prompt + target as one string) or ``split``.
        prefix_tokens: positions before the text that the model adds (u_m: 1).
    """

    image_marker: tuple[int, ...] = ()
    text_marker: tuple[int, ...] = ()
    n_visual: int = 0
    max_seq_len: int = 512
    tokenize: Literal["joint", "split"] = "joint"
    prefix_tokens: int = 1

    def marker(self, has_image: bool) -> tuple[int, ...]:
        """The marker ids of an image or a text-only question."""
        return self.image_marker if has_image else self.text_marker

    def text_budget(self, has_image: bool) -> int:
        """Text tokens (BOS and marker included) that fit beside u_m and the visual tokens."""
        return self.max_seq_len - self.prefix_tokens - (self.n_visual if has_image else 0)


def build_layout(
    tokenizer: Any,
    *,
    n_visual: int,
    max_seq_len: int,
    image_marker: bool = True,
    tokenize: Literal["joint", "split"] = "joint",
) -> SequenceLayout:
    """The reference layout for ``tokenizer``: marker ids, visual count and length budget.

    Raises:
        ValueError: ``max_seq_len`` leaves no room for one text token after the fixed prefix.
    """
    image_ids = tuple(text_ids(tokenizer, IMAGE_MARKER)) if image_marker else ()
    text_ids_ = tuple(text_ids(tokenizer, NO_IMAGE_MARKER)) if image_marker else ()
    layout = SequenceLayout(image_ids, text_ids_, n_visual, max_seq_len, tokenize)
    room = min(
        layout.text_budget(True) - len(image_ids), layout.text_budget(False) - len(text_ids_)
    )
    if room <= 1:  # BOS and the marker must leave at least one text token
        raise ValueError(
            f"data.max_seq_len={max_seq_len} leaves no room for text after u_m, BOS, the image "
            f"marker ({len(image_ids)} tokens) and {n_visual} visual tokens"
        )
    return layout


@dataclass(frozen=True)
class EncodedExample:
    """One tokenized training example (the text part of the LLM input).

    Attributes:
        input_ids: ``[BOS, marker, prompt + target, EOS]`` after truncation.
        labels: same length; IGNORE_INDEX on BOS, marker and prompt, the ids on target and EOS.
        prompt_len: number of leading positions that are not target (BOS and marker included).
        visual_at: index in ``input_ids`` where the model inserts V' (after BOS and the marker).
        truncated: whether the assembled sequence was longer than ``max_seq_len``.
    """

    input_ids: list[int]
    labels: list[int]
    prompt_len: int
    visual_at: int
    truncated: bool


def text_ids(tokenizer: Any, text: str) -> list[int]:
    """Ids of ``text`` without special tokens (works for any Hugging Face tokenizer)."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _specials(tokenizer: Any) -> tuple[list[int], list[int]]:
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    return bos, eos


def encode_pair(
    tokenizer: Any, pair: PromptPair, layout: SequenceLayout | int, has_image: bool = False
) -> EncodedExample:
    """Tokenize ``pair`` for teacher-forced training in the reference layout.

    Args:
        tokenizer: a Hugging Face tokenizer (BOS/EOS used when it defines them).
        pair: prompt and target text.
        layout: the model's :class:`SequenceLayout`; a bare int is a ``max_seq_len`` with no
            markers, no visual tokens, no u_m and split tokenisation (plain text models, tests).
        has_image: whether the question has an image (chooses the marker and the budget).
    """
    if isinstance(layout, int):
        layout = SequenceLayout(max_seq_len=layout, tokenize="split", prefix_tokens=0)
    bos, eos = _specials(tokenizer)
    head = bos + list(layout.marker(has_image))
    prompt = text_ids(tokenizer, pair.prompt)
    if layout.tokenize == "joint":
        body = text_ids(tokenizer, pair.prompt + pair.target)
    else:
        body = prompt + text_ids(tokenizer, pair.target)
    ids = head + body + eos
    masked = min(len(head) + len(prompt), len(ids))
    labels = [IGNORE_INDEX] * masked + ids[masked:]
    budget = layout.text_budget(has_image)
    return EncodedExample(
        input_ids=ids[:budget],
        labels=labels[:budget],
        prompt_len=min(masked, budget),
        visual_at=len(head),
        truncated=len(ids) > budget,
    )


def encode_prompt(
    tokenizer: Any, prompt: str, layout: SequenceLayout | int, has_image: bool = False
) -> tuple[list[int], bool]:
    """Ids of a generation prompt ``[BOS, marker, prompt]``, the prompt cut on the left.

    Args:
        tokenizer: a Hugging Face tokenizer.
        prompt: the prompt text.
        layout: the model's layout, or a bare ``max_len`` (no marker, no u_m, no visual tokens).
        has_image: chooses the marker and the room left for the visual tokens.

    Returns:
        The ids and whether the prompt was truncated.
    """
    if isinstance(layout, int):
        layout = SequenceLayout(max_seq_len=layout, tokenize="split", prefix_tokens=0)
    bos, _ = _specials(tokenizer)
    head = bos + list(layout.marker(has_image))
    body = text_ids(tokenizer, prompt)
    room = max(1, layout.text_budget(has_image) - len(head))
    return head + body[-room:], len(body) > room


def encode_pairs(
    tokenizer: Any, pairs: Iterable[PromptPair], max_seq_len: int
) -> tuple[list[EncodedExample], int]:
    """Encode many text-only pairs without markers; returns the examples and the truncated count."""
    examples = [encode_pair(tokenizer, p, max_seq_len) for p in pairs]
    return examples, sum(e.truncated for e in examples)
