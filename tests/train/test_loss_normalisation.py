"""Micro-batch is a speed setting: any split of a window gives the seed's batch 1 x N gradient.

The seed trains at micro-batch 1, each sample's loss the mean over its own answer tokens, divided
by the accumulation steps. The recipe sums per-sample means over the window and divides by the
window's samples; a token-mean over a micro-batch (Hugging Face's loss) would weight long answers
more whenever the micro-batch changes (e.g. when the OOM retry halves it).
"""

from __future__ import annotations

import math

import pytest
import torch

from ablate.jobs.mmt_recipe import MmtRecipe
from ablate.train.batches import collate_layout
from ablate.train.throughput import Throughput
from ablate.train.windows import epoch_windows


@pytest.fixture(scope="module")
def recipe(tmp_path_factory, tiny_spec, make_ctx):
    spec = tiny_spec(
        model={"precision": "fp32"}, train={"batch_size": 4, "accumulation": 1, "autocast": "none"}
    )
    r = MmtRecipe(spec, make_ctx(tmp_path_factory.mktemp("norm")))
    r.setup()
    return r


def _window(recipe):
    """Four training examples with clearly different answer lengths, images and text mixed."""
    examples = sorted(recipe.data.train_examples, key=lambda e: len(e.input_ids))
    n = len(examples)
    picked = [examples[0], examples[n // 3], examples[-(n // 3)], examples[-1]]
    assert len({sum(label != -100 for label in e.labels) for e in picked}) > 1
    return picked


def _collate(recipe, examples, layout="pad"):
    pad = recipe.model.tokenizer.pad_token_id
    return collate_layout(examples, pad, recipe.load_image, len(recipe.model.taps), layout)


def _grads(recipe, examples, splits, layout="pad"):
    """Adapter gradients after one window fed as micro-batches of the given sizes."""
    recipe.optimizer.zero_grad(set_to_none=True)
    start = 0
    for size in splits:
        batch = _collate(recipe, examples[start : start + size], layout)
        recipe.step.forward_backward(batch, window_samples=len(examples))
        start += size
    return {n: p.grad.clone() for n, p in recipe.trainable if p.grad is not None}


@pytest.mark.parametrize("layout", ["pad", "pack"])
def test_every_micro_batch_split_gives_the_batch_one_gradient(recipe, layout):
    examples = _window(recipe)
    reference = _grads(recipe, examples, [1, 1, 1, 1])  # the seed: batch 1 x accumulation 4
    assert reference and any(g.abs().sum() > 0 for g in reference.values())
    for splits in ([4], [2, 2], [3, 1]):
        got = _grads(recipe, examples, splits, layout)
        assert got.keys() == reference.keys()
        for name, grad in reference.items():
            torch.testing.assert_close(got[name], grad, rtol=1e-4, atol=1e-7, msg=name)


def test_a_token_mean_would_not(recipe):
    """The check above can fail: HF's token-mean over one micro-batch of 4 differs from it."""
    examples = _window(recipe)
    reference = _grads(recipe, examples, [1, 1, 1, 1])
    recipe.optimizer.zero_grad(set_to_none=True)
    batch = _collate(recipe, examples)
    out = recipe.model.forward_layout(batch["layout"], batch["images"], return_logits=True)
    picked = out.logits.flatten(0, 1)[batch["layout"].answer_index].float()
    token_mean = torch.nn.functional.cross_entropy(picked, batch["layout"].answer_target)
    token_mean.backward()
    diffs = [
        (p.grad - reference[n]).abs().max().item()
        for n, p in recipe.trainable
        if p.grad is not None and n in reference
    ]
    assert max(diffs) > 1e-4


@pytest.mark.parametrize("nan_at", [1, 2])
def test_a_nan_micro_batch_is_skipped_as_the_seed_does(recipe, monkeypatch, nan_at):
    """No gradient from a non-finite loss; counted; the other samples' gradients stand; a NaN
    ending the window means no step (the seed's ``continue``), its gradients carry over."""
    examples = _window(recipe)
    kept = [e for i, e in enumerate(examples[:3]) if i != nan_at]
    reference = _grads(recipe, kept, [1, 1])
    recipe.optimizer.zero_grad(set_to_none=True)
    micro_batches = [_collate(recipe, [e]) for e in examples[:3]]
    original = recipe.model.forward_layout
    calls = {"n": 0}

    def nan_forward(layout, images, *args, **kwargs):
        out = original(layout, images, *args, **kwargs)
        if layout is micro_batches[nan_at]["layout"]:
            out["sample_losses"] = out["sample_losses"] * float("nan")
        calls["n"] += 1
        return out

    stepped = {}
    monkeypatch.setattr(recipe.model, "forward_layout", nan_forward)
    monkeypatch.setattr(
        recipe.step,
        "optimizer_step",
        lambda norm: stepped.update(
            {n: p.grad.clone() for n, p in recipe.trainable if p.grad is not None}
        ),
    )
    before = recipe.metrics.get("train/nan_skipped", 0.0)
    loss = recipe._train_window(micro_batches, 2, Throughput("cpu", recipe.model))
    assert math.isfinite(loss) and recipe.metrics["train/nan_skipped"] == before + 1
    grads = (
        stepped if nan_at == 1 else {n: p.grad for n, p in recipe.trainable if p.grad is not None}
    )
    assert (nan_at == 2) == (not stepped)  # the last micro-batch was NaN: no step
    for name, grad in reference.items():
        torch.testing.assert_close(grads[name], grad, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize(("drop", "steps"), [(True, 2), (False, 3)])
def test_the_last_partial_window_is_dropped_as_the_seed_does(
    tmp_path, tiny_spec, make_ctx, drop, steps
):
    """10 samples at 2 x 2: the seed steps twice an epoch (its partial window is zeroed)."""
    spec = tiny_spec(
        data={"synthetic": {"n_train": 10}},
        train={"epochs": 1, "batch_size": 2, "accumulation": 2, "drop_last_window": drop},
    )
    r = MmtRecipe(spec, make_ctx(tmp_path))
    r.setup()
    assert len(r.data.train_examples) == 10
    assert r.metrics["train/steps"] == steps
    lengths = [len(e.input_ids) for e in r.data.train_examples]
    windows = epoch_windows(lengths, r.cfg.train, seed=0, epoch=0)
    assert [len(w) for w in windows] == ([4, 4] if drop else [4, 4, 2])


def test_answer_only_head_gives_the_full_logits_loss_and_gradients(recipe):
    """Training runs the LM head on answer positions only: same per-sample losses and gradients."""
    batch = _collate(recipe, _window(recipe))
    results = []
    for full in (True, False):
        recipe.optimizer.zero_grad(set_to_none=True)
        out = recipe.model.forward_layout(batch["layout"], batch["images"], return_logits=full)
        out.sample_losses.sum().backward()
        grads = {n: p.grad.clone() for n, p in recipe.trainable if p.grad is not None}
        results.append((out.sample_losses.detach(), grads, out.logits))
    (full_losses, full_grads, full_logits), (fast_losses, fast_grads, fast_logits) = results
    assert full_logits is not None and fast_logits is None
    torch.testing.assert_close(fast_losses, full_losses, rtol=1e-5, atol=1e-6)
    for name, grad in full_grads.items():
        diff = (fast_grads[name] - grad).abs().max().item()
        assert diff <= 1e-4 * grad.abs().max().item() + 1e-8, (name, diff, grad.abs().max().item())


def test_fp16_step_skips_non_finite_gradients_without_the_scalers_sync(
    tmp_path, tiny_spec, make_ctx
):
    """The window's one read carries the scaled gradient norm: non-finite -> no step and the scale
    lowered (``GradScaler.step``'s rule), finite -> a step; the scaler's own check is not used."""
    spec = tiny_spec(model={"precision": "fp16"}, train={"autocast": "fp16"})
    r = MmtRecipe(spec, make_ctx(tmp_path))
    r.setup()
    params = [p for _, p in r.trainable]
    examples = _window(r)
    for norm, steps in ((float("inf"), False), (1.0, True)):
        r.step.forward_backward(_collate(r, examples[:2]), 2)
        before = [p.detach().clone() for p in params]
        scale = r.scaler.get_scale()
        if not steps:
            params[0].grad.fill_(float("inf"))
        r.step.optimizer_step(norm)
        changed = any(not torch.equal(b, p) for b, p in zip(before, params, strict=True))
        assert changed is steps
        assert (r.scaler.get_scale() < scale) is not steps
