"""Insert adapters into the LLM's decoder layers and the vision tower's blocks.

Adapters wrap modules; nothing's ``forward`` is replaced. An adapter "before attention" replaces
the block's input norm (LLM ``input_layernorm``, open_clip ``ln_1``) by
:class:`~ablate.model.adapters.base.AdaptedInput` (norm, then adapter); "before the MLP" does the
same with ``post_attention_layernorm`` / ``ln_2``. ``placement.vision: after_attn`` puts the
vision tower's attention-site adapter on the attention output instead, by replacing open_clip's
``ls_1`` with :class:`~ablate.model.adapters.base.AdaptedOutput` (adapter, then ``ls_1``): the block
computes x + ls_1(adapter(attn(ln_1 x))), the seed's ALIP placement (77cacc3 ``forward_alip``).
Adapter widths come from the towers.
"""

from __future__ import annotations

from torch import nn

from ablate.model.adapters.base import AdaptedInput, AdaptedOutput, Adapter, RoutingState
from ablate.model.adapters.configs import AdapterConfig
from ablate.model.adapters.registry import get_method
from ablate.model.vision import tower_blocks, tower_width

LLM_NORMS = {"attn": "input_layernorm", "mlp": "post_attention_layernorm"}
VISION_NORMS = {"attn": "ln_1", "mlp": "ln_2"}
VISION_AFTER_ATTN = "ls_1"
"""open_clip's scale on the attention output (Identity or LayerScale), wrapped for after_attn."""


def _wrap(
    block: nn.Module, name: str, adapter: Adapter, wrapper: type[AdaptedInput] = AdaptedInput
) -> None:
    inner = getattr(block, name)
    if isinstance(inner, AdaptedInput):
        raise ValueError(f"{type(block).__name__}.{name} already has an adapter")
    setattr(block, name, wrapper(inner, adapter))


def llm_layers(llm: nn.Module) -> list[nn.Module]:
    """The decoder layers of a transformers causal LM (``model.layers``)."""
    return list(llm.model.layers)


def place_adapters(
    llm: nn.Module, visual: nn.Module, config: AdapterConfig, llm_routing: RoutingState
) -> list[nn.Parameter]:
    """Insert the adapters of ``config`` and return the parameters they declare trainable.

    Args:
        llm: a transformers ``LlamaForCausalLM`` (possibly 4/8-bit).
        visual: an open_clip ``VisionTransformer``.
        config: the adapter config (method, sizes, placement).
        llm_routing: routing state shared by the LLM's routers (see ``RoutingState``).
    """
    method = get_method(config)
    placement = config.placement
    trainable: list[nn.Parameter] = []
    if placement.llm:
        if method.adapt_llm is not None:
            trainable += method.adapt_llm(config, llm)
        else:
            width = int(llm.config.hidden_size)
            for layer in llm_layers(llm):
                for site in placement.before:
                    adapter = method.block_adapter(config, width, "llm", llm_routing)
                    _wrap(layer, LLM_NORMS[site], adapter)
                    trainable += adapter.trainable_parameters()
    if placement.vision:
        width = tower_width(visual)
        after_attn = placement.vision == "after_attn"
        for block in tower_blocks(visual):
            for site in placement.before:
                adapter = method.block_adapter(config, width, "vision", None)
                if after_attn and site == "attn":
                    _wrap(block, VISION_AFTER_ATTN, adapter, AdaptedOutput)
                else:
                    _wrap(block, VISION_NORMS[site], adapter)
                trainable += adapter.trainable_parameters()
    return trainable
