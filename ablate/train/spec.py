"""The ``train`` section of an ``mmt`` spec: optimiser, schedule, batching and precision.

Defaults are the seed paper's single-GPU recipe (arXiv 2407.17813, following LaVIN): batch 1 x
accumulation 32, 20 epochs, 2 warm-up epochs then a half-cycle cosine to ``min_lr``, AdamW with
betas (0.9, 0.95) and weight decay 0.02 on weight matrices only.

Learning rate. LaVIN's code treats the configured value as a *base* learning rate and scales it
with the effective batch (``lr = blr * batch * accumulation / 256``: 9e-3 -> 1.125e-3 at batch 32);
the paper's text states 0.009 as if absolute. ``lr_mode="scaled"`` (the default) follows the code
that produced the published numbers; ``lr_mode="absolute"`` uses ``lr`` as written. Every run
records the learning rate and effective batch it actually used (``train/effective_lr``,
``train/effective_batch``), so the two readings can never be confused in a report.

This module must not import torch: sweep planning validates specs without it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ablate.spec.base import SpecModel, nonsemantic

LR_SCALE_BATCH = 256
"""The reference batch of LaVIN's linear scaling rule (``lr = blr * effective_batch / 256``)."""


class TrainSpec(SpecModel):
    """How the adapters are trained (hyperparameters that change what a run computes)."""

    epochs: int = Field(20, ge=1)
    """Passes over the training split."""
    batch_size: int = Field(1, ge=1)
    """Samples per forward/backward (micro-batch)."""
    accumulation: int = Field(32, ge=1)
    """Micro-batches per optimiser step; the effective batch is ``batch_size * accumulation``."""
    lr: float = Field(9e-3, gt=0)
    """Base learning rate (``lr_mode="scaled"``) or the learning rate itself (``"absolute"``)."""
    lr_mode: Literal["scaled", "absolute"] = "scaled"
    """``scaled``: LaVIN's ``lr * effective_batch / 256``; ``absolute``: ``lr`` as written."""
    warmup_epochs: float = Field(2.0, ge=0)
    """Linear warm-up length in (fractional) epochs, from 0 to the peak learning rate."""
    min_lr: float = Field(0.0, ge=0)
    """Learning rate at the end of the half-cycle cosine."""
    weight_decay: float = Field(0.02, ge=0)
    """AdamW decoupled weight decay, applied only to parameters with two or more dimensions."""
    optimizer: Literal["adamw", "paged_adamw32bit"] = "adamw"
    """``adamw`` (torch) or bitsandbytes' paged AdamW32bit (LaVIN's choice; needs CUDA)."""
    betas: tuple[float, float] = (0.9, 0.95)
    """AdamW betas."""
    eps: float = Field(1e-8, gt=0)
    """AdamW epsilon."""
    autocast: Literal["none", "bf16", "fp16"] = "bf16"
    """Mixed precision of the forward pass (fp16 uses a gradient scaler)."""
    drop_last_window: bool = True
    """Leave out an epoch's last, partial accumulation window, as the seed does (its DataLoader
    drops the last batch and ``optimizer.zero_grad()`` at each epoch start discards the partial
    window's gradients: 22 of 12,726 samples an epoch at 1 x 32). False steps on it."""
    nan_loss: Literal["skip", "raise"] = "skip"
    """``skip``: a micro-batch whose loss is not finite gets no backward pass (and, if it ends an
    accumulation window, no optimiser step), as the seed's engine.py; ``raise``: fail the run."""
    grad_clip: float | None = Field(None, gt=0)
    """Clip the global gradient norm of the trainable parameters to this value (None: no clip)."""
    length_grouped: bool = True
    """Group micro-batches by length (shuffled within mega-batches) instead of padding to a fixed
    length; with ``batch_size=1`` this changes nothing."""
    eval_every_epoch: bool = True
    """Measure validation accuracy after every epoch (logged per epoch, for pruning by a tuner)."""
    eval_every_epoch_max_questions: int | None = Field(None, ge=1)
    """Cap the per-epoch validation pass to a prefix of the split (the final pass is complete)."""
    micro_batch: int | Literal["auto"] | None = nonsemantic(None)
    """Samples per forward pass, a speed setting (not in the run id): each accumulation window
    (``batch_size x accumulation`` samples, what one step trains on) is sorted by length and cut
    into micro-batches of this size; the loss is normalised per window, so the gradient is the
    same. None: ``batch_size``; ``auto``: the largest that fits the GPU's free memory by the
    memory model (8 on a CPU). Recorded per run (``train/micro_batch``)."""
    pack: bool = nonsemantic(False)
    """Pack each micro-batch's samples into one row (positions restarting per sample, attention
    block-diagonal: flash-attention varlen when installed, an SDPA block mask otherwise) instead
    of right-padding them: no compute on padding. Same losses and gradients (tested)."""
    pin_memory: bool = nonsemantic(True)
    """Page-locked host batches copied to the GPU asynchronously (CUDA only)."""
    gradient_checkpointing: bool = nonsemantic(False)
    """Recompute block activations in the backward pass (both towers): less memory for larger
    micro-batches at ~30% more compute; the result is the same."""
    num_workers: int = nonsemantic(0, ge=0)
    """DataLoader worker processes (does not change the result)."""
    cpu_threads: int = nonsemantic(1, ge=1)
    """Torch intra-op threads when training on CPU. One is fastest for the tiny twins (their
    matrices are too small to split, and spinning OpenMP threads collapse on a shared 2-core
    machine) and keeps CPU results bit-identical across machines with different core counts."""
    log_every: int = nonsemantic(10, ge=1)
    """Log training metrics every this many optimiser steps."""

    @model_validator(mode="after")
    def _check_schedule(self) -> TrainSpec:
        if self.warmup_epochs > self.epochs:
            raise ValueError(
                f"train.warmup_epochs={self.warmup_epochs} exceeds train.epochs={self.epochs}; "
                "the warm-up must fit inside the run"
            )
        if self.betas[0] >= 1 or self.betas[1] >= 1 or min(self.betas) < 0:
            raise ValueError(f"train.betas={self.betas} must both lie in [0, 1)")
        if isinstance(self.micro_batch, int) and self.micro_batch < 1:
            raise ValueError(f"train.micro_batch={self.micro_batch} must be >= 1, 'auto' or null")
        return self

    @property
    def effective_batch(self) -> int:
        """Samples per optimiser step."""
        return self.batch_size * self.accumulation

    @property
    def effective_lr(self) -> float:
        """The peak learning rate the optimiser actually uses."""
        if self.lr_mode == "scaled":
            return self.lr * self.effective_batch / LR_SCALE_BATCH
        return self.lr
