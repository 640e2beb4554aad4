"""Trainable-parameter counts and GPU-memory estimates, computed on the meta device.

Counts build the model at its real shapes on the meta device (no weights, no allocation), insert
the adapters exactly as training does and count what is marked trainable, so the plan table and
the run agree by construction.

The memory estimate is a planning aid, not a promise:
weights (bytes per parameter of the precision; NF4 ~0.52 B incl. double-quant constants, int8 1 B,
for the LLM's linear layers; embeddings and norms stay in the compute dtype) + trainable state
(fp32 weight, grad, two AdamW moments: 16 B per parameter) + activations (Korthikanti et al. 2022,
~34 * tokens * width bytes per layer at 16 bit with fused attention, for every LLM and ViT block,
since gradients flow through all of them to the vision adapters) + fp32 logits twice + 1 GiB of
CUDA context. Checked against the anchors of DESIGN.md section 8 (bf16 bs 16: 52 GiB measured).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from ablate.model.adapters.configs import AdapterConfig, validate_adapter_config
from ablate.model.spec import ModelSpec

GIB = 1024**3
_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}
_QUANT_BYTES = {"nf4": 0.516, "int8": 1.0}


@lru_cache(maxsize=128)
def _counts(model: ModelSpec, adapter: AdapterConfig) -> dict[str, int]:
    from torch import nn

    from ablate.model.multimodal import build_meta_model

    mm = build_meta_model(model, adapter)
    linear = sum(
        m.weight.numel()
        for name, m in mm.llm.named_modules()
        if isinstance(m, nn.Linear) and not name.endswith("lm_head") and "lora_" not in name
    )
    trainable_ids = {id(p) for _, p in mm.trainable_named_parameters()}
    return {
        "trainable": sum(p.numel() for _, p in mm.trainable_named_parameters()),
        "trainable_effective": mm.effective_trainable_count(),
        "llm": sum(p.numel() for p in mm.llm.parameters() if id(p) not in trainable_ids),
        "llm_linear": linear,
        "vision": sum(p.numel() for p in mm.visual.parameters() if id(p) not in trainable_ids),
        "llm_layers": int(mm.llm.config.num_hidden_layers),
        "llm_width": int(mm.llm.config.hidden_size),
        "vocab": int(mm.llm.config.vocab_size),
        "vision_layers": len(mm.visual.transformer.resblocks),
        "vision_width": int(mm.visual.transformer.width),
        "vision_tokens": int(mm.visual.positional_embedding.shape[0]),
    }


def count_trainable_parameters(model: ModelSpec, adapter: AdapterConfig | dict) -> int:
    """Trainable parameters (adapters + neck + u_m) at real shapes, on the meta device."""
    return _counts(model, validate_adapter_config(adapter))["trainable"]


def estimate_gpu_memory_gib(
    model: ModelSpec, adapter: AdapterConfig | dict, batch_size: int, seq_len: int
) -> float:
    """Rough peak GPU memory (GiB) of one training step; see the module docstring."""
    c = _counts(model, validate_adapter_config(adapter))
    dtype_bytes = _BYTES[model.precision]
    if model.quantization == "none":
        llm_bytes = c["llm"] * dtype_bytes
    else:
        q = _QUANT_BYTES[model.quantization]
        llm_bytes = c["llm_linear"] * q + (c["llm"] - c["llm_linear"]) * dtype_bytes
    weights = llm_bytes + c["vision"] * dtype_bytes + c["trainable"] * 16
    act_bytes = 34 * (dtype_bytes / 2)
    llm_act = act_bytes * batch_size * seq_len * c["llm_width"] * c["llm_layers"]
    vit_act = act_bytes * batch_size * c["vision_tokens"] * c["vision_width"] * c["vision_layers"]
    logits = 2 * 4 * batch_size * seq_len * c["vocab"]
    return round((weights + llm_act + vit_act + logits) / GIB + 1.0, 2)


def describe_model(
    model: ModelSpec, adapter: AdapterConfig | dict, batch_size: int = 1, seq_len: int = 512
) -> dict[str, Any]:
    """Plan-table columns of one run: trainable parameters and a GPU-memory estimate.

    ``inert`` names trainable parameters that can never change (u_m when nothing reads it, see
    ``MultimodalModel.modality_token_inert``); ``trainable_effective`` leaves them out.
    """
    adapter = validate_adapter_config(adapter)
    c = _counts(model, adapter)
    inert = c["trainable"] - c["trainable_effective"]
    return {
        "trainable_params": c["trainable"],
        "trainable_effective": c["trainable_effective"],
        "inert": f"u_m ({inert:,})" if inert else "",
        "gpu_memory_gib": estimate_gpu_memory_gib(model, adapter, batch_size, seq_len),
    }
