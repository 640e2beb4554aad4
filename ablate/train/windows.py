"""Accumulation windows and the micro-batches that compute them: what a step trains on vs how.

The spec's ``batch_size x accumulation`` says which samples make one optimiser step: a *window*,
the same samples the reference run stepped on (at the paper's 1 x 32, 32 consecutive samples of
the epoch's shuffled order). With the per-sample loss summed over the window and divided by its
samples (:meth:`~ablate.model.multimodal.MultimodalModel.forward_layout`), the gradient does not
depend on how the window is cut into forward passes. So the *micro-batch* is a pure speed setting
(``train.micro_batch``, not part of the run id): a window is sorted by length and cut into
micro-batches of that many samples, padded or packed into one row.

``micro_batch: auto`` takes the largest micro-batch the GPU-memory model
(:mod:`ablate.model.sizing`) fits into the device's free memory, with a margin; the out-of-memory
retry halves it if the model was optimistic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from ablate.train.batches import epoch_batches

AUTO_MEMORY_MARGIN = 0.85
"""Share of the free GPU memory ``micro_batch: auto`` plans to fill."""
AUTO_CPU_MICRO_BATCH = 8
"""``micro_batch: auto`` on a CPU, where memory does not bind: big enough to amortise the calls."""


def epoch_windows(lengths: Sequence[int], train: Any, *, seed: int, epoch: int) -> list[list[int]]:
    """The accumulation windows of one epoch (lists of sample indices), a pure function of the spec.

    Windows are ``accumulation`` consecutive batches of :func:`epoch_batches` (shuffled, length
    grouped as the spec says); with ``drop_last_window`` the last partial window is left out, as
    the seed does.

    Args:
        lengths: sequence length of every training sample.
        train: the :class:`~ablate.train.spec.TrainSpec`.
        seed: the run seed.
        epoch: 0-based epoch.
    """
    batches = epoch_batches(
        lengths, train.batch_size, seed=seed, epoch=epoch, length_grouped=train.length_grouped
    )
    size = train.accumulation
    windows = [
        [i for batch in batches[start : start + size] for i in batch]
        for start in range(0, len(batches), size)
    ]
    if train.drop_last_window and windows and len(batches) % size:
        windows.pop()
    return windows


def split_window(
    window: Sequence[int], lengths: Sequence[int], micro_batch: int
) -> list[list[int]]:
    """Cut a window into micro-batches of ``micro_batch`` samples, longest first.

    Sorting inside the window keeps padded micro-batches tight (and packed rows even) without
    changing which samples the step trains on.
    """
    ordered = sorted(window, key=lambda i: (-lengths[i], i))
    return [ordered[i : i + micro_batch] for i in range(0, len(ordered), micro_batch)]


def auto_micro_batch(
    effective_batch: int,
    device: str,
    estimate_gib: Callable[[int], float],
    free_gib: Callable[[], float] | None = None,
) -> int:
    """The largest micro-batch up to ``effective_batch`` whose estimated peak fits the device.

    Args:
        effective_batch: samples per optimiser step (no micro-batch is larger than a window).
        device: ``cpu`` or ``cuda[:i]``.
        estimate_gib: micro-batch -> estimated peak GiB of a training step.
        free_gib: the device's free memory in GiB (default: ``torch.cuda.mem_get_info``).

    Returns:
        At least 1 (the OOM retry is the safety net when even that does not fit).
    """
    if not device.startswith("cuda"):
        return min(effective_batch, AUTO_CPU_MICRO_BATCH)
    if free_gib is None:
        import torch

        free_bytes, _ = torch.cuda.mem_get_info(torch.device(device))
        free = free_bytes / 1024**3
    else:
        free = free_gib()
    budget = free * AUTO_MEMORY_MARGIN
    best = 1
    for micro in range(1, effective_batch + 1):
        if estimate_gib(micro) > budget:
            break
        best = micro
    return best


def windows_per_micro_batch(effective_batch: int, micro_batch: int) -> int:
    """Forward passes a full window takes at ``micro_batch`` samples each."""
    return math.ceil(effective_batch / micro_batch)
