import math

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from ablate.train.optim import build_optimizer, lr_at_step, weight_decay_groups
from ablate.train.spec import TrainSpec


def test_effective_lr_scaled_and_absolute():
    scaled = TrainSpec()
    assert scaled.effective_batch == 32
    assert scaled.effective_lr == pytest.approx(9e-3 * 32 / 256)  # LaVIN: 1.125e-3
    absolute = TrainSpec(lr_mode="absolute")
    assert absolute.effective_lr == pytest.approx(9e-3)


def test_spec_rejects_warmup_longer_than_run():
    with pytest.raises(ValidationError, match="warmup_epochs"):
        TrainSpec(epochs=2, warmup_epochs=3)
    with pytest.raises(ValidationError):
        TrainSpec(unknown_field=1)


def test_schedule_warmup_then_half_cosine():
    spec = TrainSpec(epochs=10, warmup_epochs=2, lr=1.0, lr_mode="absolute", min_lr=0.1)
    steps = 5
    lrs = [lr_at_step(s, steps, spec) for s in range(10 * steps + 1)]
    assert lrs[0] == 0.0
    # linear warm-up over the first two epochs
    assert lrs[5] == pytest.approx(0.5)
    assert all(b > a for a, b in zip(lrs[:10], lrs[1:11], strict=True))
    assert lrs[10] == pytest.approx(1.0)
    # half-cycle cosine: monotone down, midpoint halfway, ends at min_lr
    assert all(b < a for a, b in zip(lrs[10:50], lrs[11:51], strict=True))
    assert lrs[30] == pytest.approx(0.1 + 0.9 * 0.5)
    assert lrs[50] == pytest.approx(0.1)
    # past the end it stays at min_lr
    assert lr_at_step(1000, steps, spec) == pytest.approx(0.1)


def test_schedule_without_warmup_starts_at_peak():
    spec = TrainSpec(epochs=4, warmup_epochs=0, lr=2.0, lr_mode="absolute")
    assert lr_at_step(0, 3, spec) == pytest.approx(2.0)
    assert lr_at_step(6, 3, spec) == pytest.approx(1.0 + math.cos(math.pi * 0.5))


class _Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 3)
        self.norm = nn.LayerNorm(3)
        self.conv = nn.Conv1d(4, 4, 1, groups=2)
        self.frozen = nn.Linear(3, 3)
        self.frozen.requires_grad_(False)


def test_weight_decay_only_on_matrices_and_frozen_skipped():
    toy = _Toy()
    groups = weight_decay_groups(toy.named_parameters(), 0.02)
    by_decay = {g["weight_decay"]: set(g["names"]) for g in groups}
    assert by_decay[0.02] == {"proj.weight", "conv.weight"}
    assert by_decay[0.0] == {"proj.bias", "norm.weight", "norm.bias", "conv.bias"}
    optimizer = build_optimizer(toy.named_parameters(), TrainSpec())
    assert isinstance(optimizer, torch.optim.AdamW)
    assert optimizer.param_groups[0]["betas"] == (0.9, 0.95)
    assert sum(len(g["params"]) for g in optimizer.param_groups) == 6


def test_decay_is_applied_to_matrices_but_not_biases():
    toy = _Toy()
    spec = TrainSpec(lr=0.1, lr_mode="absolute", weight_decay=0.5)
    optimizer = build_optimizer(toy.named_parameters(), spec)
    before = {n: p.detach().clone() for n, p in toy.named_parameters()}
    for p in toy.parameters():
        if p.requires_grad:
            p.grad = torch.zeros_like(p)  # no gradient: only decay can move a parameter
    optimizer.step()
    after = dict(toy.named_parameters())
    assert not torch.equal(before["proj.weight"], after["proj.weight"])
    assert torch.equal(before["proj.bias"], after["proj.bias"])
    assert torch.equal(before["norm.weight"], after["norm.weight"])
    assert torch.equal(before["frozen.weight"], after["frozen.weight"])


def test_nothing_to_train_is_an_error():
    toy = _Toy().requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        build_optimizer(toy.named_parameters(), TrainSpec())
