"""Optimiser construction and the warm-up + half-cycle cosine learning-rate schedule.

Weight decay only on weight matrices: biases, norms' gains and other 1-D parameters are left
undecayed (LaVIN's ``param_groups_lrd``/timm ``add_weight_decay`` rule), because decaying a bias or
a scale pulls it towards zero without regularising any interaction between features.

The schedule is a pure function of the optimiser step (not a stateful torch scheduler), so a
resumed run recomputes the exact learning rate from the saved step count alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from ablate.train.spec import TrainSpec


def weight_decay_groups(
    named_params: Iterable[tuple[str, nn.Parameter]], weight_decay: float
) -> list[dict]:
    """Split trainable parameters into a decayed (>= 2-D) and an undecayed (< 2-D) group.

    Args:
        named_params: ``(name, parameter)`` pairs; frozen ones (no ``requires_grad``) are skipped.
        weight_decay: decay of the first group.

    Returns:
        Two optimiser parameter groups (empty ones are dropped), each with a ``names`` list so that
        tests and logs can say which parameter went where.
    """
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    decay_names: list[str] = []
    no_decay_names: list[str] = []
    for name, param in named_params:
        if not param.requires_grad:
            continue
        if param.ndim >= 2:
            decay.append(param)
            decay_names.append(name)
        else:
            no_decay.append(param)
            no_decay_names.append(name)
    groups = [
        {"params": decay, "weight_decay": weight_decay, "names": decay_names},
        {"params": no_decay, "weight_decay": 0.0, "names": no_decay_names},
    ]
    return [g for g in groups if g["params"]]


def build_optimizer(
    named_params: Iterable[tuple[str, nn.Parameter]], spec: TrainSpec
) -> torch.optim.Optimizer:
    """The optimiser named by ``spec.optimizer`` over the trainable parameters.

    The initial learning rate is the peak (``spec.effective_lr``); :func:`set_learning_rate`
    overwrites it every step according to :func:`lr_at_step`.

    Raises:
        ValueError: there is nothing to train, or ``paged_adamw32bit`` was asked for without
            bitsandbytes' CUDA optimiser.
    """
    groups = weight_decay_groups(named_params, spec.weight_decay)
    if not groups:
        raise ValueError("the model has no trainable parameters: check the adapter config")
    if spec.optimizer == "adamw":
        return torch.optim.AdamW(
            groups, lr=spec.effective_lr, betas=spec.betas, eps=spec.eps, foreach=False
        )
    if spec.optimizer == "paged_adamw32bit":
        try:
            import bitsandbytes as bnb

            return bnb.optim.PagedAdamW32bit(
                groups, lr=spec.effective_lr, betas=spec.betas, eps=spec.eps
            )
        except Exception as exc:  # noqa: BLE001 - bitsandbytes fails in several ways without CUDA
            raise ValueError(
                "train.optimizer='paged_adamw32bit' needs bitsandbytes with CUDA "
                f"({type(exc).__name__}: {exc}); use train.optimizer='adamw' on this machine"
            ) from exc
    raise ValueError(f"train.optimizer={spec.optimizer!r}; allowed: adamw, paged_adamw32bit")


def lr_at_step(step: int, steps_per_epoch: int, spec: TrainSpec) -> float:
    """Learning rate for optimiser step ``step`` (0-based): linear warm-up, then half-cycle cosine.

    Progress is measured in fractional epochs, as LaVIN's ``adjust_learning_rate`` does, so that
    ``warmup_epochs`` means the same thing at any effective batch.

    Args:
        step: optimiser steps already taken.
        steps_per_epoch: optimiser steps in one epoch (>= 1).
        spec: the train section (peak lr, min lr, epochs, warm-up).
    """
    peak = spec.effective_lr
    epoch = step / max(steps_per_epoch, 1)
    if epoch < spec.warmup_epochs:
        return peak * epoch / spec.warmup_epochs
    span = spec.epochs - spec.warmup_epochs
    progress = min((epoch - spec.warmup_epochs) / span, 1.0) if span > 0 else 1.0
    return spec.min_lr + (peak - spec.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set ``lr`` on every parameter group."""
    for group in optimizer.param_groups:
        group["lr"] = lr
