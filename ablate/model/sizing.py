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
CUDA context. Checked against the anchors of DESIGN.md section 8 (bf16 bs 16: 52 GiB measured),
and at LLaMA-2 width with 2 of its 32 layers against a CPU step (``llm_layers=2``,
tests/model/test_real_width.py).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from ablate.model.adapters.configs import AdapterConfig, validate_adapter_config
from ablate.model.spec import ModelSpec

GIB = 1024**3
_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}
_QUANT_BYTES = {"nf4": 0.516, "int8": 1.0}
CUDA_CONTEXT_GIB = 1.0


@lru_cache(maxsize=128)
def _counts(model: ModelSpec, adapter: AdapterConfig, llm_layers: int | None) -> dict[str, int]:
    """Counts of one meta-device build.

    Cached: every caller passes all three arguments, so one run's plan columns and its memory
    estimate share one build.
    """
    from torch import nn

    from ablate.model.build import build_meta_model
    from ablate.model.placement import llm_layers as decoder_layers

    mm = build_meta_model(model, adapter)
    if llm_layers is not None:  # the preset's first ``llm_layers`` decoder layers, adapters and all
        layers = decoder_layers(mm.llm)
        if not 1 <= llm_layers <= len(layers):
            raise ValueError(f"llm_layers={llm_layers}: the preset has {len(layers)} layers")
        mm.llm.model.layers = nn.ModuleList(layers[:llm_layers])
        mm.llm.config.num_hidden_layers = llm_layers
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


def parameter_counts(model: ModelSpec, adapter: AdapterConfig | dict) -> dict[str, int]:
    """Frozen and trainable parameter counts at real shapes (meta device).

    What a FLOP or memory model needs: ``llm``, ``llm_linear``, ``vision``, ``vision_tokens``,
    the widths and layer counts.
    """
    return dict(_counts(model, validate_adapter_config(adapter), None))


def count_trainable_parameters(model: ModelSpec, adapter: AdapterConfig | dict) -> int:
    """Trainable parameters (adapters + neck + u_m) at real shapes, on the meta device."""
    return _counts(model, validate_adapter_config(adapter), None)["trainable"]


def gpu_memory_terms(
    model: ModelSpec,
    adapter: AdapterConfig | dict,
    batch_size: int,
    seq_len: int,
    *,
    images: int | None = None,
    llm_layers: int | None = None,
) -> dict[str, float]:
    """The terms (bytes) of :func:`estimate_gpu_memory_gib`, for checks against a measured step.

    Args:
        model: the backbones and their precision.
        adapter: the adapter config.
        batch_size: samples per micro-batch.
        seq_len: LLM input length (u_m and the visual tokens included).
        images: images per micro-batch (default ``batch_size``: every sample has one).
        llm_layers: count only the preset's first ``llm_layers`` decoder layers (a
            layer-reduced model of the same width); default all of them.

    Returns:
        ``frozen_weights`` (LLM and vision tower), ``trainable_state`` (16 B per trainable
        parameter), ``llm_activations``, ``vision_activations``, ``logits``, ``cuda_context``.
    """
    c = _counts(model, validate_adapter_config(adapter), llm_layers)
    images = batch_size if images is None else images
    dtype_bytes = _BYTES[model.precision]
    if model.quantization == "none":
        llm_bytes = c["llm"] * dtype_bytes
    else:
        q = _QUANT_BYTES[model.quantization]
        llm_bytes = c["llm_linear"] * q + (c["llm"] - c["llm_linear"]) * dtype_bytes
    act_bytes = 34 * (dtype_bytes / 2)
    vit_tokens = images * c["vision_tokens"]
    return {
        "frozen_weights": llm_bytes + c["vision"] * dtype_bytes,
        "trainable_state": c["trainable"] * 16,
        "llm_activations": act_bytes * batch_size * seq_len * c["llm_width"] * c["llm_layers"],
        "vision_activations": act_bytes * vit_tokens * c["vision_width"] * c["vision_layers"],
        "logits": 2 * 4 * batch_size * seq_len * c["vocab"],
        "cuda_context": CUDA_CONTEXT_GIB * GIB,
    }


def estimate_gpu_memory_gib(
    model: ModelSpec, adapter: AdapterConfig | dict, batch_size: int, seq_len: int, **overrides: Any
) -> float:
    """Rough peak GPU memory (GiB) of one training step: the sum of :func:`gpu_memory_terms`.

    ``overrides``: ``images`` and ``llm_layers``, as :func:`gpu_memory_terms` takes them.
    """
    terms = gpu_memory_terms(model, adapter, batch_size, seq_len, **overrides)
    return round(sum(terms.values()) / GIB, 2)


def describe_model(
    model: ModelSpec, adapter: AdapterConfig | dict, batch_size: int = 1, seq_len: int = 512
) -> dict[str, Any]:
    """Plan-table columns of one run: trainable parameters and a GPU-memory estimate.

    ``inert`` names trainable parameters that can never change (u_m when nothing reads it, see
    ``MultimodalModel.modality_token_inert``); ``trainable_effective`` leaves them out.
    """
    adapter = validate_adapter_config(adapter)
    c = _counts(model, adapter, None)
    inert = c["trainable"] - c["trainable_effective"]
    return {
        "trainable_params": c["trainable"],
        "trainable_effective": c["trainable_effective"],
        "inert": f"u_m ({inert:,})" if inert else "",
        "gpu_memory_gib": estimate_gpu_memory_gib(model, adapter, batch_size, seq_len),
    }
