"""Building the multimodal model: real weights, meta shapes, and what was built.

:func:`build_multimodal_model` loads the frozen backbones named by a :class:`ModelSpec` (real
checkpoints, or the tiny twins of the same architectures) and inserts the adapter;
:func:`build_meta_model` builds the same model on the meta device, for the memory model and the
plan's parameter counts without allocating a byte; :func:`model_record` says what was built.
"""

from __future__ import annotations

from typing import Any

import torch

from ablate.model.adapters.base import AdaptedInput
from ablate.model.adapters.configs import AdapterConfig, validate_adapter_config
from ablate.model.llm import load_llm, meta_llm, torch_dtype
from ablate.model.multimodal import MultimodalModel
from ablate.model.spec import ModelSpec
from ablate.model.vision import get_vision_preset, load_vision_tower, meta_vision_tower


def move_trainable_to(model: MultimodalModel, device: str) -> None:
    """Put every adapter (fp32) and the neck/u_m on ``device``; frozen modules stay as loaded."""
    for module in model.modules():
        if isinstance(module, AdaptedInput):
            module.adapter.to(device)
    model.neck.to(device)
    model.modality.to(device)


def build_multimodal_model(
    model: ModelSpec, adapter: AdapterConfig | dict, device: str = "cpu"
) -> MultimodalModel:
    """Load the backbones of ``model``, insert ``adapter`` and return the multimodal model.

    Frozen backbones are in ``model.precision`` (the LLM possibly 4/8-bit); trainable modules in
    fp32. Weights are loaded from ``llm_path`` / ``vision_path``, the presets' defaults, or the
    tiny twins (materialised on first use).

    Raises:
        FileNotFoundError: weights missing or unreachable (one clear message).
        ValueError: a bad adapter config or a checkpoint that does not fit.
    """
    adapter = validate_adapter_config(adapter)
    llm, tokenizer = load_llm(model, device)
    visual = load_vision_tower(model).to(device=device, dtype=torch_dtype(model.precision))
    mm = MultimodalModel(model, adapter, llm, visual, tokenizer)
    move_trainable_to(mm, device)
    return mm


def build_meta_model(model: ModelSpec, adapter: AdapterConfig | dict) -> MultimodalModel:
    """The multimodal model at real shapes on the meta device (no weights, no allocation)."""
    adapter = validate_adapter_config(adapter)
    llm = meta_llm(model.llm)
    visual = meta_vision_tower(model.vision)
    with torch.device("meta"):
        return MultimodalModel(model, adapter, llm, visual, tokenizer=None)


def model_record(mm: MultimodalModel) -> dict[str, Any]:
    """What was built, for the run's provenance: presets, image transform, taps, sizes.

    Saved in the adapter file's metadata (``adapter.safetensors``), so an adapter says which
    backbones, taps and image statistics it was trained with.
    """
    preset = get_vision_preset(mm.spec.vision)
    return {
        "llm": mm.spec.llm,
        "llm_source": str(getattr(mm.llm, "name_or_path", "") or "random"),
        "llm_layers": int(mm.llm.config.num_hidden_layers),
        "llm_width": int(mm.llm.config.hidden_size),
        "precision": mm.spec.precision,
        "quantization": mm.spec.quantization,
        "vision": mm.spec.vision,
        "vision_open_clip_model": preset.model_name,
        "vision_quick_gelu": preset.quick_gelu,
        "image_size": preset.image_size,
        "image_resize": mm.spec.image_resize,
        "image_norm": mm.spec.image_norm,
        "image_mean_train": list(mm.image_stats["train"][0]),
        "image_std_train": list(mm.image_stats["train"][1]),
        "image_mean_eval": list(mm.image_stats["eval"][0]),
        "image_std_eval": list(mm.image_stats["eval"][1]),
        "taps": [i + 1 for i in mm.taps],
        "adapter": mm.adapter_config.name,
        "trainable_params": sum(p.numel() for _, p in mm.trainable_named_parameters()),
        "trainable_params_effective": mm.effective_trainable_count(),
        "modality_token_inert": mm.modality_token_inert,
    }
