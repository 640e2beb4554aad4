"""The model section of a run spec: which backbones, at which precision, with which neck.

This module must stay importable without torch: planning, run ids and ``ablate status`` read it.
Preset names come from the tables of :mod:`ablate.model.presets`; the builders that turn them into
modules live in :mod:`ablate.model.llm` and :mod:`ablate.model.vision`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import field_validator

from ablate.model.presets import LLM_PRESETS, VISION_PRESETS, is_twin, twin_of
from ablate.spec.base import SpecModel, nonsemantic

__all__ = ["ModelSpec", "NeckSpec", "is_twin", "twin_of"]


class NeckSpec(SpecModel):
    """Visual neck V' = rho(V W_v + b_v) W_t + b_t (paper eq. 3)."""

    dim: int = 128
    """Hidden width d_v of the neck (the paper: 128)."""
    act: Literal["silu", "swiglu"] = "silu"
    """rho: ``silu`` as in LaVIN's code, ``swiglu`` as the paper's text names it."""

    @field_validator("dim")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value <= 0:
            raise ValueError(f"neck.dim must be positive, got {value}")
        return value


class ModelSpec(SpecModel):
    """Backbones, their precision and the visual neck of one run."""

    llm: str = "llama2-7b"
    """LLM preset: llama-7b, llama2-7b, llama2-13b, or a tiny twin (tiny-llama, tiny-llama2)."""
    llm_path: str | None = nonsemantic()
    """Local transformers directory or hub id overriding the preset's default location."""
    vision: str = "diht-vit-l14-336"
    """Vision preset: clip-vit-l14, clip-vit-l14-336, diht-vit-l14-336, alip-vit-b32, or a twin."""
    vision_path: str | None = nonsemantic()
    """State-dict file (or open_clip pretrained tag) overriding the preset's weights."""
    precision: Literal["bf16", "fp16", "fp32"] = "bf16"
    """Dtype of the frozen backbones (and the compute dtype of 4/8-bit layers)."""
    quantization: Literal["none", "nf4", "int8"] = "none"
    """Freeze the LLM in 4-bit NF4 (double quant) or 8-bit through bitsandbytes."""
    neck: NeckSpec = NeckSpec()
    """The visual neck between the vision tower and the LLM."""
    tap_every: int = 4
    """Take the [cls] token after every k-th ViT block (ViT-L/14: 6 tokens)."""
    isolate_modality_token: bool = True
    """No other token attends to u_m, as in LaVIN's code (``mask[:, :, 1:, 0] = -inf``): u_m then
    acts only through the routers that read it. False makes u_m an ordinary prefix token."""
    image_resize: Literal["direct", "crop"] = "direct"
    """How an image reaches the tower's square input of side S. ``direct``: bicubic resize to
    (S, S), no crop, aspect ratio not kept, as LaVIN's code does (``Resize((S, S))``); wide
    diagrams keep their edges. ``crop``: open_clip's eval transform, shortest side to S and a
    centre crop (drops the sides of a 2:1 image)."""
    image_norm: Literal["seed", "clip", "imagenet"] = "seed"
    """Normalisation statistics. ``seed``: OpenAI CLIP statistics for training images, ImageNet
    statistics for evaluation images, the mismatch LaVIN's code ran (its ``util/datasets.py`` vs
    ``eval.py``) and that produced the paper's numbers. ``clip``: the tower's own (OpenAI CLIP)
    statistics everywhere. ``imagenet``: ImageNet statistics everywhere (LaVIN upstream)."""

    @field_validator("llm")
    @classmethod
    def _known_llm(cls, value: str) -> str:
        if value not in LLM_PRESETS:
            raise ValueError(f"unknown llm preset {value!r}; allowed: {', '.join(LLM_PRESETS)}")
        return value

    @field_validator("vision")
    @classmethod
    def _known_vision(cls, value: str) -> str:
        if value not in VISION_PRESETS:
            raise ValueError(
                f"unknown vision preset {value!r}; allowed: {', '.join(VISION_PRESETS)}"
            )
        return value

    @field_validator("tap_every")
    @classmethod
    def _positive_tap(cls, value: int) -> int:
        if value <= 0:
            raise ValueError(f"tap_every must be positive, got {value}")
        return value


def is_tiny_spec(spec: dict[str, Any]) -> bool:
    """Whether a run spec (as stored in a record) uses tiny twins or synthetic data."""
    model = spec.get("model") or {}
    data = spec.get("data") or {}
    presets = [model.get("llm"), model.get("vision")]
    twin = False
    for preset in presets:
        if isinstance(preset, str):
            try:
                twin = twin or is_twin(preset)
            except (KeyError, ValueError):
                twin = twin or preset.startswith("tiny-")
    return twin or data.get("dataset") == "synthetic"
