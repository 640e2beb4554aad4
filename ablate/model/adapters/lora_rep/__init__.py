"""LoRA in the LLM + RepAdapter in the vision tower (Table 3 row 10 of arXiv 2407.17813).

The config and the registered name live here (torch-free: validating a spec never imports torch);
the modules are in :mod:`ablate.model.adapters.lora_rep.layers`, imported when a model is
built.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from ablate.model.adapters.configs import RoutedConfig
from ablate.model.adapters.registry import AdapterMethod, register_method


class LoraRepConfig(RoutedConfig):
    """LoRA in the LLM (peft) + RepAdapter in the vision tower (Table 3 row 10).

    Defaults are the seed's run (2a04fd0 ``lavin/model.py``); the paper's usual peft reading is
    ``lora_rank: 8, lora_alpha: 16, lora_dropout: 0.05, target_modules: [q_proj, v_proj],
    vision_adapter: plain``.
    """

    name: Literal["lora_rep"] = "lora_rep"
    llm_block_adapters: ClassVar[bool] = False
    lora_rank: int = Field(2, gt=0)
    """LoRA rank (2a04fd0: ``nn.Linear(dim, 2)`` then ``nn.Linear(2, out)``)."""
    lora_alpha: float = Field(2.0, gt=0)
    """peft scales LoRA by alpha / rank: 2 / 2 = 1, i.e. no scaling, as 2a04fd0."""
    lora_dropout: float = Field(0.0, ge=0, lt=1)
    """Dropout on LoRA's input (2a04fd0: none)."""
    target_modules: tuple[str, ...] = (
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    )
    """LLM linear layers that get LoRA (2a04fd0: wq, wk, wv, wo, w1, w3, w2, all seven)."""
    vision_adapter: Literal["router", "plain"] = "router"
    """Vision adapter: ``router`` is LaVIN's RepAdapter_Router (2a04fd0: ``set_Clip_Adapter``
    with ``visual_adapter_type router``); ``plain`` the RepAdapter with a residual."""
    dim: int = Field(8, gt=0)
    """RepAdapter width in the vision tower."""
    groups: int = Field(2, gt=0)
    dropout: float = Field(0.1, ge=0, lt=1)
    scale: float = 1.0


METHOD = register_method(
    AdapterMethod(
        name="lora_rep",
        config_cls=LoraRepConfig,
        citation="arXiv 2407.17813 Table 3 row 10 (LoRA in the LLM + RepAdapter in the ViT); "
        "seed 2a04fd0",
        layers=f"{__name__}.layers",
    )
)
