"""Batched answer generation with a KV cache: sampling, per-row stopping, decoding.

:func:`generate_answers` runs the model's LLM over a ``left`` layout of prompts
(:mod:`ablate.model.batch_layout`): the prefill records the LLM routers' weights (u_m computed
apart, or read in the sequence), every decode step reuses them for its one new token a row.
Sampling is the reference's temperature + nucleus (top-p), greedy at temperature 0, from one
seeded generator, so a run's answers are reproducible; a row stops once ``stop`` holds for its
text (evaluation: "The answer is X."), while every row still samples each step so the other rows'
random streams are unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ablate.model.batch_layout import BatchLayout


@torch.no_grad()
def generate_answers(
    model: Any,
    batch: BatchLayout,
    images: torch.Tensor | None = None,
    *,
    max_new_tokens: int = 64,
    temperature: float = 0.1,
    top_p: float = 0.75,
    seed: int | None = None,
    stop: Callable[[str], bool] | None = None,
) -> list[str]:
    """Sample answers for a ``left`` layout of prompts, batched with a KV cache.

    ``model`` is a :class:`~ablate.model.multimodal.MultimodalModel` (its LLM, tokenizer,
    embedding and routing); the number of tokens sampled is left in ``model.generated_tokens``.

    ``temperature <= 0`` decodes greedily. Returns the decoded new text of every sample
    (up to its EOS, special tokens skipped). Call ``eval()`` first: the mode is left as is,
    and adapter dropout is active in training mode.

    ``stop(text)`` ends a row as soon as it is true of the row's text so far (evaluation stops
    once "The answer is X." is there). Every step still samples every row, so the random
    stream, and hence every other row's tokens, are the same as without it.
    """
    if model.tokenizer is None:
        raise ValueError("generate needs a tokenizer (this model was built on the meta device)")
    if batch.layout != "left":
        raise ValueError(f"generation needs a left-padded layout, not {batch.layout!r}")
    eos = model.tokenizer.eos_token_id
    embeds = model.embed_layout(batch, images, role="eval")
    device = embeds.device
    generator = torch.Generator(device=device)
    if seed is not None:
        generator.manual_seed(seed)
    rows = embeds.shape[0]
    mask = batch.attention_mask
    try:
        model.route(batch, record=True)
        out = model.llm(
            inputs_embeds=embeds,
            attention_mask=mask,
            position_ids=batch.position_ids,
            use_cache=True,
        )
        # decode steps: one new token a row, routed by its sample's prefill weights
        state = model.routing
        state.record, state.reuse, state.um_index = False, True, None
        if batch.um_index is None:
            state.token_route = batch.has_image.long()[:, None]  # (B, 1): u_m's variant
        else:
            state.token_route = torch.arange(rows, device=device)[:, None]  # (B, 1)
        past = out.past_key_values
        next_pos = batch.position_ids[:, -1:] + 1  # (B, 1)
        logits = out.logits[:, -1].float()  # (B, V)
        new_tokens = torch.zeros(rows, 0, dtype=torch.long, device=device)
        done = torch.zeros(rows, dtype=torch.bool, device=device)
        active = torch.zeros(rows, dtype=torch.long, device=device)  # tokens sampled per row
        for _ in range(max_new_tokens):
            active += ~done
            token = sample_tokens(logits, temperature, top_p, generator)  # (B,)
            token = torch.where(done, torch.full_like(token, eos), token)
            new_tokens = torch.cat([new_tokens, token[:, None]], dim=1)
            done |= token == eos
            if stop is not None:
                done |= stopped_rows(model.tokenizer, new_tokens, done, eos, stop)
            if bool(done.all()):
                break
            mask = torch.cat([mask, mask.new_ones(rows, 1)], dim=1)
            out = model.llm(
                input_ids=token[:, None],
                attention_mask=mask,
                position_ids=next_pos,
                past_key_values=past,
                use_cache=True,
            )
            past, next_pos = out.past_key_values, next_pos + 1
            logits = out.logits[:, -1].float()
    finally:
        model.routing.reset()
    model.generated_tokens = int(active.sum())  # read by evaluation's token count
    return [decode_row(model.tokenizer, row, eos) for row in new_tokens.tolist()]


def stopped_rows(
    tokenizer: Any,
    new_tokens: torch.Tensor,
    done: torch.Tensor,
    eos: int,
    stop: Callable[[str], bool],
) -> torch.Tensor:
    """(B,) rows not yet done whose text so far satisfies ``stop``."""
    rows = new_tokens.tolist()
    flags = [
        not finished and stop(decode_row(tokenizer, row, eos))
        for row, finished in zip(rows, done.tolist(), strict=True)
    ]
    return torch.tensor(flags, dtype=torch.bool, device=done.device)


def decode_row(tokenizer: Any, row: list[int], eos: int) -> str:
    """A row's new tokens as text, up to its EOS (special tokens skipped)."""
    row = row[: row.index(eos)] if eos in row else row
    return tokenizer.decode(row, skip_special_tokens=True)


def sample_tokens(
    logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator
) -> torch.Tensor:
    """Temperature + nucleus (top-p) sampling; greedy when temperature <= 0. (B, V) -> (B,)."""
    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    outside = sorted_probs.cumsum(-1) - sorted_probs > top_p  # keep the smallest head >= top_p
    sorted_probs = sorted_probs.masked_fill(outside, 0.0)
    sorted_probs = sorted_probs / sorted_probs.sum(-1, keepdim=True)
    choice = torch.multinomial(sorted_probs, 1, generator=generator)  # (B, 1)
    return order.gather(-1, choice).squeeze(-1)
