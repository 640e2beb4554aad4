"""Forward layout, one optimisation step, trainable state, and batched generation."""

import pytest
import torch
from model_helpers import text_batch

PROMPTS = [
    "Question: Which material is this spatula made of? Response: The answer is A.",
    "Question: Select the solid.",
    "Question: Is the following trait inherited or acquired? Options: (A) acquired",
]


@pytest.fixture
def router_model(make_model):
    torch.manual_seed(0)
    return make_model({"name": "router", "placement": {"before": ["attn", "mlp"]}})


def test_layout_bos_then_visual_tokens_then_text_and_u_m_apart(router_model):
    mm = router_model
    ids, mask, labels = text_batch(mm.tokenizer, PROMPTS[:2])
    has_image = torch.tensor([True, False])
    images = torch.randn(2, 3, 64, 64)
    batch = mm.lay_out(ids, mask, labels, has_image)
    embeds = mm.embed_layout(batch, images[:1])
    n_taps = len(mm.taps)
    assert n_taps == 3  # tiny-diht: 12 blocks, a tap after every 4th
    length0, length1 = int(mask[0].sum()), int(mask[1].sum())
    assert batch.lengths == (length0 + n_taps, length1)  # u_m is computed apart, not a token
    assert embeds.shape[1] == max(length0 + n_taps, length1)
    emb = mm.llm.get_input_embeddings()
    assert torch.equal(embeds[0, 0], emb.weight[ids[0, 0]])  # BOS first
    visual = mm.encode_images(images[:1])[0]
    assert torch.allclose(embeds[0, 1 : 1 + n_taps], visual)
    assert torch.equal(embeds[0, 1 + n_taps], emb.weight[ids[0, 1]])
    assert torch.equal(embeds[1, 1], emb.weight[ids[1, 1]])  # text-only: no visual tokens
    # the answer positions: every real label, predicted from the position before it
    targets = labels[0, 1:length0].tolist() + labels[1, 1:length1].tolist()
    assert batch.answer_target.tolist() == targets
    assert batch.route_of[0].unique().tolist() == [1] and batch.route_of[1].unique().tolist() == [0]


def test_u_m_in_the_sequence_when_not_isolated(make_model, tiny_spec):
    torch.manual_seed(0)
    spec = tiny_spec.model_copy(update={"isolate_modality_token": False})
    mm = make_model({"name": "router"}, spec)
    ids, mask, labels = text_batch(mm.tokenizer, PROMPTS[:2])
    has_image = torch.tensor([True, False])
    batch = mm.lay_out(ids, mask, labels, has_image)
    embeds = mm.embed_layout(batch, torch.randn(1, 3, 64, 64))
    u_m = mm.modality.embedding.weight
    assert batch.um_index.tolist() == [0, embeds.shape[1]]  # each row's first position
    assert torch.equal(embeds[0, 0], u_m[1]) and torch.equal(embeds[1, 0], u_m[0])
    out = mm(ids, mask, labels, torch.randn(2, 3, 64, 64), has_image)
    out.loss.backward()
    assert mm.modality.embedding.weight.grad.abs().sum() > 0


def test_text_only_rows_ignore_image_content_and_image_rows_do_not(router_model):
    mm = router_model.eval()
    ids, mask, labels = text_batch(mm.tokenizer, PROMPTS[:2])
    has_image = torch.tensor([True, False])
    a = mm(ids, mask, labels, torch.randn(2, 3, 64, 64), has_image).logits
    b = mm(ids, mask, labels, torch.randn(2, 3, 64, 64), has_image).logits
    assert torch.allclose(a[1], b[1], atol=1e-6)
    assert not torch.allclose(a[0], b[0], atol=1e-4)


def test_one_step_changes_adapters_only_and_reaches_vision_adapters(router_model):
    mm = router_model.train()
    ids, mask, labels = text_batch(mm.tokenizer, PROMPTS)
    frozen_before = {
        k: v.clone() for k, v in mm.state_dict().items() if k not in mm.trainable_state_dict()
    }
    trainable_before = mm.trainable_state_dict()
    opt = torch.optim.AdamW([p for _, p in mm.trainable_named_parameters()], lr=1e-2)
    out = mm(ids, mask, labels, torch.randn(3, 3, 64, 64), torch.tensor([True, False, True]))
    assert torch.isfinite(out.loss)
    out.loss.backward()
    grads = {n: p.grad for n, p in mm.trainable_named_parameters()}
    vision_up = [g for n, g in grads.items() if n.startswith("visual.") and ".conv_B." in n]
    assert vision_up and all(g is not None and g.abs().sum() > 0 for g in vision_up)
    assert all(p.grad is None for n, p in mm.named_parameters() if n not in grads)
    opt.step()
    after = mm.state_dict()
    for k, v in frozen_before.items():
        assert torch.equal(v, after[k]), k
    changed = [k for k, v in trainable_before.items() if not torch.equal(v, after[k])]
    assert any(k.startswith("llm.") for k in changed) and any(
        k.startswith("neck.") for k in changed
    )


def test_trainable_state_dict_round_trips_strict(router_model, make_model, tmp_path):
    mm = router_model.eval()
    with torch.no_grad():
        for _, p in mm.trainable_named_parameters():
            p.add_(torch.randn_like(p) * 0.05)
    sd = mm.trainable_state_dict()
    assert all(
        k.startswith(("llm.", "visual.", "neck.", "modality.")) and ".adapter." in k
        for k in sd
        if k.startswith(("llm.", "visual."))
    )
    torch.save(sd, tmp_path / "adapter.pt")
    fresh = make_model({"name": "router", "placement": {"before": ["attn", "mlp"]}}).eval()
    fresh.load_trainable_state_dict(torch.load(tmp_path / "adapter.pt", weights_only=True))
    ids, mask, labels = text_batch(mm.tokenizer, PROMPTS[:2])
    images, has_image = torch.randn(2, 3, 64, 64), torch.tensor([True, False])
    assert torch.equal(
        mm(ids, mask, labels, images, has_image).logits,
        fresh(ids, mask, labels, images, has_image).logits,
    )
    with pytest.raises(ValueError, match="missing"):
        fresh.load_trainable_state_dict({k: v for k, v in sd.items() if "neck" not in k})
    with pytest.raises(ValueError, match="unexpected"):
        fresh.load_trainable_state_dict({**sd, "llm.extra": torch.zeros(1)})
    other = make_model({"name": "bottleneck"})
    with pytest.raises(ValueError):
        other.load_trainable_state_dict(sd)


def test_trainable_state_is_small_next_to_the_backbones(router_model):
    mm = router_model
    n_trainable = sum(v.numel() for v in mm.trainable_state_dict().values())
    n_all = sum(p.numel() for p in mm.parameters())
    assert 0 < n_trainable < 0.2 * n_all


@pytest.mark.parametrize("adapter", ["router", "bottleneck_scaled"])
def test_batched_left_padded_generation_matches_one_by_one(adapter, make_model):
    torch.manual_seed(1)
    mm = make_model({"name": adapter}).eval()
    with torch.no_grad():  # trained-looking adapters, so routing weights matter
        for _, p in mm.trainable_named_parameters():
            p.add_(torch.randn_like(p) * 0.2)
    images = torch.randn(3, 3, 64, 64)
    has_image = torch.tensor([True, False, True])
    ids, mask, _ = text_batch(mm.tokenizer, PROMPTS, padding_side="left")
    batched = mm.generate(ids, mask, images, has_image, max_new_tokens=6, temperature=0)
    single = []
    for i, prompt in enumerate(PROMPTS):
        ids1, mask1, _ = text_batch(mm.tokenizer, [prompt], padding_side="left")
        single += mm.generate(
            ids1, mask1, images[i : i + 1], has_image[i : i + 1], max_new_tokens=6, temperature=0
        )
    assert batched == single
    assert all(isinstance(t, str) for t in batched) and any(batched)


def test_greedy_first_token_matches_the_training_forward(make_model):
    torch.manual_seed(2)
    mm = make_model({"name": "router"}).eval()
    with torch.no_grad():
        for _, p in mm.trainable_named_parameters():
            p.add_(torch.randn_like(p) * 0.2)
    ids, mask, labels = text_batch(mm.tokenizer, PROMPTS[1:2])
    images, has_image = torch.randn(1, 3, 64, 64), torch.tensor([True])
    logits = mm(ids, mask, labels, images, has_image).logits
    first = int(logits[0, -1].argmax())
    out = mm.generate(ids, mask, images, has_image, max_new_tokens=1, temperature=0)
    expected = mm.tokenizer.decode([first], skip_special_tokens=True)
    assert out == [expected]


def test_sampling_is_seeded(make_model):
    mm = make_model({"name": "router"}).eval()
    ids, mask, _ = text_batch(mm.tokenizer, PROMPTS[:2], padding_side="left")
    kw = dict(max_new_tokens=8, temperature=1.0, top_p=0.9)
    a = mm.generate(ids, mask, None, None, seed=7, **kw)
    b = mm.generate(ids, mask, None, None, seed=7, **kw)
    assert a == b and len(a) == 2
    with pytest.raises(ValueError, match="no images"):
        mm.generate(ids, mask, None, torch.tensor([True, False]), max_new_tokens=1)


@pytest.mark.parametrize("isolate", [True, False])
def test_isolated_modality_token_acts_only_through_routers(isolate, make_model, tiny_spec):
    spec = tiny_spec.model_copy(update={"isolate_modality_token": isolate})
    mm = make_model({"name": "bottleneck"}, spec=spec).eval()  # no router reads u_m
    ids, mask, labels = text_batch(mm.tokenizer, PROMPTS[:2])
    before = mm(ids, mask, labels).logits
    with torch.no_grad():
        mm.modality.embedding.weight.add_(1.0)
    after = mm(ids, mask, labels).logits
    # positions after u_m see it only when it is not isolated
    assert torch.allclose(before[:, 1:], after[:, 1:], atol=1e-5) == isolate


def test_gradient_checkpointing_gives_the_same_gradients(make_model):
    torch.manual_seed(3)
    grads = []
    for checkpointing in (False, True):
        mm = make_model({"name": "router", "dropout": 0.0}).train()
        with torch.no_grad():
            for _, p in mm.trainable_named_parameters():
                p.copy_(torch.sin(torch.arange(p.numel(), dtype=p.dtype)).view_as(p) * 0.1)
        if checkpointing:
            mm.enable_gradient_checkpointing()
        ids, mask, labels = text_batch(mm.tokenizer, PROMPTS[:2])
        images = torch.ones(2, 3, 64, 64)
        mm(ids, mask, labels, images, torch.tensor([True, False])).loss.backward()
        grads.append({n: p.grad.clone() for n, p in mm.trainable_named_parameters()})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        assert torch.allclose(grads[0][name], grads[1][name], atol=1e-6), name
