"""Resumable checkpoints: trainable weights, optimiser, position and RNG, written atomically.

A checkpoint is one ``torch.save`` file (``checkpoint.pt``) plus a manifest (``checkpoint.json``)
holding its SHA-256 and the position it records. Both are written to temporary names and moved in
place with ``os.replace`` (checkpoint first, manifest last), so a crash mid-write leaves either the
previous complete pair or a checkpoint whose hash does not match the manifest. A checkpoint that
fails its hash, or cannot be read, is ignored with a warning and the run starts over: losing an
epoch is better than resuming from garbage.

Only the trainable state is saved (adapters, neck, modality token: a few MB at 7B), never the
frozen backbones, which are rebuilt from the spec.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"
MANIFEST_FILE = "checkpoint.json"
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
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    ckpt = run_dir / CHECKPOINT_FILE
    _atomic_write(ckpt, data)
    manifest = {"format": FORMAT_VERSION, "sha256": digest, "bytes": len(data), **asdict(position)}
    _atomic_write(run_dir / MANIFEST_FILE, json.dumps(manifest, indent=1).encode())
    return ckpt


def load_checkpoint(run_dir: Path) -> dict[str, Any] | None:
    """Load the checkpoint in ``run_dir`` if there is a valid one.

    Returns:
        The payload written by :func:`save_checkpoint` (``position`` as a :class:`TrainPosition`),
        or None when there is no checkpoint, or it is incomplete or corrupt (then with a warning
        naming the file and the reason).
    """
    ckpt, manifest_path = run_dir / CHECKPOINT_FILE, run_dir / MANIFEST_FILE
    if not ckpt.exists() and not manifest_path.exists():
        return None
    try:
        manifest = json.loads(manifest_path.read_text())
        data = ckpt.read_bytes()
    except (OSError, ValueError) as exc:
        logger.warning("ignoring checkpoint in %s: unreadable (%s); starting over", run_dir, exc)
        return None
    digest = hashlib.sha256(data).hexdigest()
    if digest != manifest.get("sha256"):
        logger.warning(
            "ignoring checkpoint %s: SHA-256 %s does not match the manifest's %s "
            "(corrupt or partly written); starting over",
            ckpt,
            digest[:12],
            str(manifest.get("sha256"))[:12],
        )
        return None
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


def remove_checkpoint(run_dir: Path) -> None:
    """Delete the checkpoint pair (after a run has finished and saved its adapter)."""
    for name in (MANIFEST_FILE, CHECKPOINT_FILE):
        (run_dir / name).unlink(missing_ok=True)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
