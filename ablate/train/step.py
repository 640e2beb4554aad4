"""One optimiser step over a window of micro-batches, with one host sync.

A window is the reference's batch of 32 samples (``batch_size x accumulation``), cut into
micro-batches by memory alone (:mod:`ablate.train.windows`). :class:`WindowStep` runs forward and
backward on each micro-batch and then steps once. It keeps the training loop's numerics in one
place, apart from the recipe that schedules epochs, checkpoints and evaluation:

- the loss: each micro-batch's backward loss is the sum of its per-sample losses divided by the
  samples of the whole window, so any cut gives the reference's batch-1 x 32 gradient;
- one host sync per step: the losses stay on the device and are read at the window's end together
  with the (scaled) gradient norm, which also tells the fp16 scaler whether to step;
- non-finite losses: the seed's ``if torch.isnan(loss): continue`` (that micro-batch gets no
  backward pass; when it ends the window, no optimiser step), or a failed run with
  ``train.nan_loss: raise``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ablate.train.throughput import Throughput


@dataclass
class WindowResult:
    """What one window contributed: its finite losses' sum and how many samples they cover."""

    loss_sum: float
    samples: int

    @property
    def loss(self) -> float:
        """The window's mean per-sample loss (over its finite samples)."""
        return self.loss_sum / max(self.samples, 1)


@dataclass
class WindowStep:
    """Forward, backward and one optimiser step per window.

    Attributes:
        model: the multimodal model (``forward_layout(layout, images)`` -> ``sample_losses``).
        optimizer: over ``params``.
        params: the trainable parameters (clipped and norm-checked together).
        scaler: the fp16 ``GradScaler`` (the seed's NativeScaler), or None.
        autocast: returns the autocast context of one forward pass.
        grad_clip: max gradient norm, or None.
        nan_loss: ``skip`` (the seed) or ``raise``.
        nan_skipped: micro-batches skipped for a non-finite loss so far (checkpointed).
    """

    model: Any
    optimizer: torch.optim.Optimizer
    params: list[torch.nn.Parameter]
    scaler: torch.amp.GradScaler | None
    autocast: Callable[[], contextlib.AbstractContextManager]
    grad_clip: float | None
    nan_loss: str = "skip"
    nan_skipped: int = 0

    def __call__(
        self, micro_batches: list[dict[str, Any]], window_samples: int, throughput: Throughput
    ) -> WindowResult:
        """Train on one window (its micro-batches already on the device); what it contributed.

        A non-finite loss is found only at the window's end (the one sync); the window's finite
        micro-batches are then recomputed without it (rare; counted in :attr:`nan_skipped`).

        Raises:
            FloatingPointError: a non-finite loss under ``nan_loss: raise``.
        """
        sums = [self.forward_backward(mb, window_samples) for mb in micro_batches]
        grads = [p.grad for p in self.params if p.grad is not None]
        norm = torch.nn.utils.get_total_norm(grads) if grads else sums[0].new_zeros(())
        # the step's one host sync: the losses and the (scaled) gradient norm together
        values = torch.stack([*sums, norm.float().to(sums[0].device)]).tolist()
        grad_norm: float | None = values.pop()
        for mb in micro_batches:
            throughput.add(mb["layout"])
        finite = [math.isfinite(v) for v in values]
        if not all(finite):
            if self.nan_loss == "raise":
                raise FloatingPointError("non-finite loss (train.nan_loss: raise)")
            self.nan_skipped += finite.count(False)
            self.optimizer.zero_grad(set_to_none=True)
            for mb, ok in zip(micro_batches, finite, strict=True):
                if ok:
                    self.forward_backward(mb, window_samples)
            grad_norm = None  # recomputed by the step (a second sync, on this rare path only)
        kept = [(mb, v) for mb, v, ok in zip(micro_batches, values, finite, strict=True) if ok]
        result = WindowResult(
            loss_sum=sum(v for _, v in kept),
            samples=sum(mb["layout"].n_samples for mb, _ in kept),
        )
        if finite[-1]:
            self.optimizer_step(grad_norm)
        return result

    def forward_backward(self, batch: dict[str, Any], window_samples: int) -> torch.Tensor:
        """Forward and backward one micro-batch; its per-sample losses' sum (on the device).

        A micro-batch whose loss is not finite gets no backward here either: its gradient is
        masked to zero, and :meth:`__call__` recomputes the window without it.
        """
        with self.autocast():
            out = self.model.forward_layout(batch["layout"], batch["images"])
        total = out.sample_losses.sum()  # (B,) per-sample mean losses -> ()
        loss = total / window_samples
        loss = torch.where(torch.isfinite(loss), loss, loss.new_zeros(()))  # no host sync
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
        else:
            loss.backward()
        return total.detach().float()

    def optimizer_step(self, grad_norm: float | None) -> None:
        """Unscale, clip and step; with the fp16 scaler, skip the step on non-finite gradients.

        ``grad_norm`` is the norm of the (scaled) gradients already read with the window's losses:
        it is finite exactly when the unscaled gradients are, so the step is skipped and the scale
        lowered as ``GradScaler.step`` would, without its own host sync. None: let the scaler
        check (its sync).
        """
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if self.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        if self.scaler is None:
            self.optimizer.step()
        elif grad_norm is None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            if math.isfinite(grad_norm):
                self.optimizer.step()
            self.scaler.update()  # reads the inf check unscale_ recorded: lowers the scale if any
        self.optimizer.zero_grad(set_to_none=True)
