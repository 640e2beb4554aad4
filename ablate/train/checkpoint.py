"""Resumable checkpoints: trainable weights, optimiser, position and RNG, written atomically.

A checkpoint is one ``torch.save`` file (``checkpoint.pt``) plus a manifest (``checkpoint.json``)
holding its SHA-256 and the position it records, written and verified by the run folder's one
integrity scheme (:func:`~ablate.store.run_folder.write_checkpoint_bytes`: checkpoint first,
manifest last, each atomically), so a crash mid-write leaves either the previous complete pair or
a checkpoint whose hash does not match the manifest. A checkpoint that fails its hash, or cannot be
read, is ignored with a warning and the run starts over: losing an epoch is better than resuming
from garbage.

Only the trainable state is saved (adapters, neck, modality token: a few MB at 7B), never the
frozen backbones, which are rebuilt from the spec.
"""

from __future__ import annotations

import io
import logging
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ablate.store.run_folder import (
    CHECKPOINT_FILE,
    CHECKPOINT_MANIFEST_FILE,
    CheckpointInvalid,
    read_checkpoint_bytes,
    write_checkpoint_bytes,
)

logger = logging.getLogger(__name__)

MANIFEST_FILE = CHECKPOINT_MANIFEST_FILE
FORMAT_VERSION = 1


@dataclass(frozen=True)
class TrainPosition:
    """Where training stands: the next micro-batch to run.

    Attributes:
        epoch: 0-based epoch the next micro-batch belongs to.
        batch_in_epoch: micro-batches of ``epoch`` already consumed (always at an optimiser-step
            boundary, so no half-accumulated gradient is ever lost).
        step: optimiser steps taken so far (drives the learning-rate schedule).
    """

    epoch: int = 0
    batch_in_epoch: int = 0
    step: int = 0


def capture_rng_state() -> dict[str, Any]:
    """The global RNG states that training consumes (torch CPU and CUDA, Python ``random``)."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": _python_state_to_lists(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`capture_rng_state` captured."""
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _python_state_to_lists(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def save_checkpoint(
    run_dir: Path,
    *,
    trainable: dict[str, torch.Tensor],
    optimizer: dict[str, Any],
    position: TrainPosition,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint and its manifest atomically into ``run_dir``.

    Args:
        run_dir: the run's folder.
        trainable: the model's trainable state dict.
        optimizer: ``optimizer.state_dict()`` (and the gradient scaler's, if any, in ``extra``).
        position: where training resumes.
        extra: other plain state (gradient scaler, loss history, per-epoch metrics).

    Returns:
        The checkpoint path.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT_VERSION,
        "trainable": {k: v.detach().cpu() for k, v in trainable.items()},
        "optimizer": optimizer,
        "position": asdict(position),
        "rng": capture_rng_state(),
        "extra": extra or {},
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return write_checkpoint_bytes(
        run_dir, buffer.getvalue(), format=FORMAT_VERSION, **asdict(position)
    )


def load_checkpoint(run_dir: Path) -> dict[str, Any] | None:
    """Load the checkpoint in ``run_dir`` if there is a valid one.

    Returns:
        The payload written by :func:`save_checkpoint` (``position`` as a :class:`TrainPosition`),
        or None when there is no checkpoint, or it is incomplete or corrupt (then with a warning
        naming the file and the reason).
    """
    ckpt = run_dir / CHECKPOINT_FILE
    try:
        found = read_checkpoint_bytes(run_dir)
    except CheckpointInvalid as exc:
        logger.warning("ignoring checkpoint %s: %s; starting over", ckpt, exc)
        return None
    if found is None:
        return None
    data, _ = found
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable payload means "start over"
        logger.warning("ignoring checkpoint %s: cannot unpickle it (%s); starting over", ckpt, exc)
        return None
    if payload.get("format") != FORMAT_VERSION:
        logger.warning(
            "ignoring checkpoint %s: format %s, expected %s",
            ckpt,
            payload.get("format"),
            FORMAT_VERSION,
        )
        return None
    payload["position"] = TrainPosition(**payload["position"])
    return payload
