"""The multimodal model at a preset's real shape with random weights (benchmarks, smoke tests).

No checkpoint is read: the LLM is built from its preset config directly on the device (the
library's own init), then, for 4/8-bit, every linear layer of the decoder is replaced by its
bitsandbytes counterpart quantised from those random weights, as ``from_pretrained`` with a
``quantization_config`` would do with real ones. The vision tower is open_clip's, randomly
initialised, without its text tower. Speed and memory match the real model; outputs are noise.
"""

from __future__ import annotations

import torch
from torch import nn

from ablate.model.adapters.configs import AdapterConfig, validate_adapter_config
from ablate.model.build import move_trainable_to
from ablate.model.llm import llm_config, torch_dtype
from ablate.model.multimodal import MultimodalModel
from ablate.model.spec import ModelSpec
from ablate.model.twins import build_twin_tokenizer
from ablate.model.vision import get_vision_preset


def _quantised_linear(linear: nn.Linear, quantization: str, dtype: torch.dtype, device: str):
    import bitsandbytes as bnb

    weight = linear.weight.data.to("cpu")  # bitsandbytes quantises on the move from the CPU
    if quantization == "nf4":
        layer = bnb.nn.Linear4bit(
            linear.in_features,
            linear.out_features,
            bias=False,
            compute_dtype=dtype,
            compress_statistics=True,
            quant_type="nf4",
            device="meta",
        )
        layer.weight = bnb.nn.Params4bit(
            weight, requires_grad=False, compress_statistics=True, quant_type="nf4"
        ).to(device)
    else:
        layer = bnb.nn.Linear8bitLt(
            linear.in_features, linear.out_features, bias=False, has_fp16_weights=False
        )
        layer.weight = bnb.nn.Int8Params(weight, requires_grad=False, has_fp16_weights=False).to(
            device
        )
    return layer


def random_llm(spec: ModelSpec, device: str = "cpu", seed: int = 0) -> nn.Module:
    """A frozen ``LlamaForCausalLM`` of ``spec.llm``'s shape with random weights."""
    from transformers import LlamaForCausalLM

    config = llm_config(spec.llm)
    config._attn_implementation = "sdpa"
    dtype = torch_dtype(spec.precision)
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            llm = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    llm.requires_grad_(False)
    if spec.quantization != "none":
        for layer in llm.model.layers:
            for parent in (layer.self_attn, layer.mlp):
                for name, child in list(parent.named_children()):
                    if isinstance(child, nn.Linear):
                        q = _quantised_linear(child, spec.quantization, dtype, device)
                        setattr(parent, name, q)
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    return llm.eval()


def random_vision_tower(spec: ModelSpec, device: str = "cpu", seed: int = 0) -> nn.Module:
    """A frozen open_clip vision tower of ``spec.vision``'s shape with random weights."""
    import open_clip
    from open_clip.model import _build_vision_tower

    preset = get_vision_preset(spec.vision)
    cfg = open_clip.get_model_config(preset.model_name)
    torch.manual_seed(seed)
    visual = _build_vision_tower(cfg["embed_dim"], cfg["vision_cfg"], preset.quick_gelu)
    visual.to(device=device, dtype=torch_dtype(spec.precision))
    visual.requires_grad_(False)
    return visual.eval()


def build_random_multimodal_model(
    model: ModelSpec, adapter: AdapterConfig | dict, device: str = "cpu", seed: int = 0
) -> MultimodalModel:
    """Real shapes, random frozen weights, adapters as in training (tokenizer: the twin's)."""
    adapter = validate_adapter_config(adapter)
    llm = random_llm(model, device, seed)
    visual = random_vision_tower(model, device, seed)
    torch.manual_seed(seed)
    mm = MultimodalModel(model, adapter, llm, visual, build_twin_tokenizer())
    move_trainable_to(mm, device)
    return mm
