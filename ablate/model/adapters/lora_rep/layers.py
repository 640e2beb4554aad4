"""LoRA in the LLM + RepAdapter in the vision tower (Table 3 row 10 of arXiv 2407.17813).

Citations: Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models" (2021), through peft;
Luo et al., "Towards Efficient Visual Adaption via Structural Re-parameterization" (RepAdapter),
as used in LaVIN's vision tower. The paper's text calls this experiment 11; its table, row 10.

LoRA is injected in place with ``peft.inject_adapter_in_model`` (no ``PeftModel`` wrapper, so module
paths stay those of the bare LLM); it works on 4-bit and 8-bit bases. peft zero-initialises LoRA's
B and gives A ``nn.Linear``'s default init (kaiming-uniform, a = sqrt(5)), as the seed's own
LoRA (2a04fd0 ``lavin/model.py``: rank 2 on wq, wk, wv, wo, w1, w3, w2, no bias, no scaling, no
dropout), so the LLM starts unchanged. The seed's vision adapter for this run is LaVIN's routed
RepAdapter before attention in every ViT block, and the LLM gets no other adapter.
"""

from __future__ import annotations

from torch import nn

from ablate.model.adapters.base import Adapter, RoutingState, routing_head
from ablate.model.adapters.lora_rep import LoraRepConfig
from ablate.model.adapters.router.layers import RepAdapter, RouterAdapter


def block_adapter(
    config: LoraRepConfig, width: int, tower: str, state: RoutingState | None
) -> Adapter:
    """The adapter of one block input of ``tower`` (``"llm"`` or ``"vision"``)."""
    if config.vision_adapter == "plain":
        return RepAdapter(width, config.dim, config.groups, config.dropout, config.scale)
    router = routing_head(width, config.temperature, config.vision_routing, tower, state)
    return RouterAdapter(width, config.dim, config.groups, config.dropout, config.scale, router)


def adapt_llm(config: LoraRepConfig, llm: nn.Module) -> list[nn.Parameter]:
    """Add LoRA to ``config.target_modules`` of every decoder layer; return the LoRA parameters."""
    from peft import LoraConfig, inject_adapter_in_model
    from peft.tuners.lora import LoraLayer

    lora = LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.target_modules),
        bias="none",
    )
    inject_adapter_in_model(lora, llm)
    params: list[nn.Parameter] = []
    for module in llm.modules():
        if isinstance(module, LoraLayer):  # fp32: MultimodalModel makes every trainable fp32
            params += list(module.lora_A.parameters()) + list(module.lora_B.parameters())
    if not params:
        raise ValueError(
            f"lora_rep: target_modules {list(config.target_modules)} match no layer of the LLM"
        )
    return params
