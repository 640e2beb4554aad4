"""Batch layouts: u_m computed apart equals u_m in the sequence; packed equals one by one.

The reference below is the model as it was before the layouts (u_m at position 0 of every row, a
4D float mask that hides it from every other token, right padding): the same per-sample losses,
logits at the text positions and gradients must come out of the u_m-apart, plain-causal model,
padded and packed, up to float error.
"""

from __future__ import annotations

import pytest
import torch
from model_helpers import ALL_ADAPTERS, adapter_id, text_batch

from ablate.model.batch_layout import (
    IGNORE_INDEX,
    SampleTokens,
    block_causal_mask,
    build_batch_layout,
)

PROMPTS = [
    "Image: Question: Which material is this spatula made of? Response: The answer is A.",
    "Image: N/A Question: Select the solid. The answer is B.",
    "Image: Question: Is the following trait inherited or acquired? (A) acquired (B) inherited",
]
N_VISUAL = 3


def _batch(mm):
    ids, mask, labels = text_batch(mm.tokenizer, PROMPTS)
    labels[:, :4] = IGNORE_INDEX  # BOS and the marker are prompt, as the data layer makes them
    has_image = torch.tensor([True, False, True])
    visual_at = torch.tensor([3, 3, 3])
    torch.manual_seed(1)
    images = torch.randn(3, 3, 64, 64)
    return ids, mask, labels, images, has_image, visual_at


def _reference(mm, ids, mask, labels, images, has_image, visual_at):
    """The pre-layout model: [u_m, tok[:at], V', tok[at:]] a row, u_m hidden by a 4D mask."""
    tokens = mm.llm.get_input_embeddings()(ids)
    visual = mm.encode_images(images[has_image])
    u_m = mm.modality(has_image).to(tokens.dtype)
    seqs, labs, k = [], [], 0
    for b in range(ids.shape[0]):
        keep = mask[b].bool()
        tok, lab, at = tokens[b][keep], labels[b][keep], int(visual_at[b])
        parts, lparts = [u_m[b], tok[:at]], [torch.tensor([IGNORE_INDEX]), lab[:at]]
        if has_image[b]:
            parts.append(visual[k])
            lparts.append(torch.full((visual.shape[1],), IGNORE_INDEX))
            k += 1
        parts.append(tok[at:])
        lparts.append(lab[at:])
        seqs.append(torch.cat(parts))
        labs.append(torch.cat(lparts))
    length = max(s.shape[0] for s in seqs)
    embeds = tokens.new_zeros(len(seqs), length, tokens.shape[-1])
    out_labels = torch.full((len(seqs), length), IGNORE_INDEX)
    real = torch.zeros(len(seqs), length, dtype=torch.bool)
    for b, seq in enumerate(seqs):
        embeds[b, : len(seq)] = seq
        out_labels[b, : len(seq)] = labs[b]
        real[b, : len(seq)] = True
    keys = torch.arange(length)
    allowed = (keys[None, :] <= keys[:, None])[None] & real[:, None, :]  # causal, real keys
    allowed[:, 1:, 0] = False  # nobody but u_m sees u_m (LaVIN: mask[:, :, 1:, 0] = -inf)
    allowed |= torch.eye(length, dtype=torch.bool)[None]
    additive = torch.zeros(allowed.shape).masked_fill(~allowed, torch.finfo(torch.float32).min)
    mm.routing.reset()  # routers read row position 0: u_m
    logits = mm.llm(inputs_embeds=embeds, attention_mask=additive[:, None]).logits
    shift = out_labels[:, 1:]
    per_token = torch.nn.functional.cross_entropy(
        logits[:, :-1].transpose(1, 2), shift, reduction="none", ignore_index=IGNORE_INDEX
    )
    losses = per_token.sum(1) / (shift != IGNORE_INDEX).sum(1).clamp(min=1)
    return losses, logits, real


def _grads(mm) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in mm.trainable_named_parameters() if p.grad is not None}


@pytest.mark.parametrize("adapter", ALL_ADAPTERS, ids=adapter_id)
def test_u_m_apart_equals_u_m_in_the_sequence_padded_and_packed(make_model, adapter):
    torch.manual_seed(0)
    mm = make_model(adapter).eval()  # no dropout: the passes must see the same function
    for p in mm.parameters():  # non-zero up-projections, so every adapter and router acts
        if p.requires_grad:
            torch.nn.init.normal_(p, std=0.05)
    inputs = _batch(mm)
    ref_losses, _, _ = _reference(mm, *inputs)
    ref_losses.sum().backward()
    ref_grads = _grads(mm)
    mm.zero_grad()
    for layout in ("pad", "pack"):
        ids, mask, labels, images, has_image, visual_at = inputs
        out = mm(ids, mask, labels, images, has_image, visual_at, False, layout)
        torch.testing.assert_close(out.sample_losses, ref_losses, rtol=1e-5, atol=1e-5)
        out.sample_losses.sum().backward()
        grads = _grads(mm)
        mm.zero_grad()
        assert grads.keys() <= ref_grads.keys()
        for name, ref in ref_grads.items():  # u_m under BA: zero there, never computed here
            grad = grads.get(name, torch.zeros_like(ref))
            torch.testing.assert_close(grad, ref, rtol=1e-4, atol=1e-6, msg=name)


def test_packed_logits_equal_one_sample_at_a_time(make_model):
    torch.manual_seed(0)
    mm = make_model({"name": "router", "placement": {"before": ["attn", "mlp"]}}).eval()
    for p in mm.parameters():
        if p.requires_grad:
            torch.nn.init.normal_(p, std=0.05)
    ids, mask, labels, images, has_image, visual_at = _batch(mm)
    packed = mm.lay_out(ids, mask, labels, has_image, visual_at, "pack")
    logits = mm.forward_layout(packed, images[has_image], return_logits=True).logits[0]
    start, k = 0, 0
    for b, n in enumerate(packed.lengths):
        one = mm.lay_out(
            ids[b : b + 1],
            mask[b : b + 1],
            labels[b : b + 1],
            has_image[b : b + 1],
            visual_at[b : b + 1],
            "pad",
        )
        imgs = images[b : b + 1] if has_image[b] else None
        alone = mm.forward_layout(one, imgs, return_logits=True).logits[0]
        torch.testing.assert_close(logits[start : start + n], alone[:n], rtol=1e-4, atol=1e-4)
        start, k = start + n, k + int(has_image[b])


def test_layouts_place_tokens_slots_and_answers():
    samples = [
        SampleTokens(
            ids=[1, 5, 6, 7, 8], labels=[-100, -100, -100, 7, 8], visual_at=2, has_image=True
        ),
        SampleTokens(ids=[1, 9, 10], labels=[-100, -100, 10], visual_at=2, has_image=False),
    ]
    pad = build_batch_layout(samples, 2, pad_id=0, layout="pad")
    assert pad.input_ids.tolist() == [[1, 5, 0, 0, 6, 7, 8], [1, 9, 10, 0, 0, 0, 0]]
    assert pad.visual_index.tolist() == [2, 3]
    assert pad.answer_index.tolist() == [4, 5, 8]  # positions predicting 7, 8 and 10
    assert pad.answer_target.tolist() == [7, 8, 10] and pad.answer_sample.tolist() == [0, 0, 1]
    assert pad.attention_mask is None and pad.computed_tokens == 14 and pad.useful_tokens == 10
    pack = build_batch_layout(samples, 2, pad_id=0, layout="pack")
    assert pack.input_ids.tolist() == [[1, 5, 0, 0, 6, 7, 8, 1, 9, 10]]
    assert pack.position_ids.tolist() == [[0, 1, 2, 3, 4, 5, 6, 0, 1, 2]]
    assert pack.answer_index.tolist() == [4, 5, 8] and pack.cu_seqlens.tolist() == [0, 7, 10]
    assert pack.route_of.tolist() == [[1] * 7 + [0] * 3]
    assert pack.computed_tokens == pack.useful_tokens == 10
    mask = block_causal_mask(pack, torch.float32)[0, 0] == 0
    assert mask[8, 7] and not mask[7, 6] and not mask[6, 7] and mask[6, 0]
    left = build_batch_layout(samples, 2, pad_id=0, layout="left")
    assert left.input_ids.tolist()[1] == [0, 0, 0, 0, 1, 9, 10]
    assert left.attention_mask.tolist()[1] == [0, 0, 0, 0, 1, 1, 1]
    assert left.position_ids.tolist()[1] == [0, 0, 0, 0, 0, 1, 2]
    with_u_m = build_batch_layout(samples, 2, pad_id=0, layout="pack", um_slot=True)
    assert with_u_m.um_index.tolist() == [0, 8] and with_u_m.visual_index.tolist() == [3, 4]
    with pytest.raises(ValueError, match="allowed: pad, pack, left"):
        build_batch_layout(samples, 2, pad_id=0, layout="ragged")
