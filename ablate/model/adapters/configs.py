"""Adapter configurations, one per method, chosen by short name (``adapter: {name: bottleneck}``).

The configs live apart from the torch modules so that validating a spec, computing a run id or
printing ``ablate status`` never imports torch; each method's module
(:mod:`ablate.model.adapters.bottleneck`, ...) holds the implementation and its paper citation.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from ablate.spec.base import SpecModel

Site = Literal["attn", "mlp"]


class PlacementSpec(SpecModel):
    """Where adapters go: which towers, and before which sub-layers of every block."""

    llm: bool = True
    """Adapt every decoder block of the LLM."""
    vision: bool = True
    """Adapt every block of the vision tower (gradients reach it through the LLM)."""
    before: tuple[Site, ...] = ("attn",)
    """Insert before the attention and/or the MLP of each block (paper: before attention)."""

    @model_validator(mode="after")
    def _non_empty(self) -> PlacementSpec:
        if not self.before:
            raise ValueError("placement.before must name at least one of: attn, mlp")
        if len(set(self.before)) != len(self.before):
            raise ValueError(f"placement.before repeats a site: {self.before}")
        return self


class AdapterConfig(SpecModel):
    """Fields every adapter shares."""

    name: str
    """Registry short name of the method."""
    placement: PlacementSpec = PlacementSpec()
    """Towers and sites the adapter is inserted at."""


class BottleneckConfig(AdapterConfig):
    """Bottleneck Adapter, paper eq. 1-2: g(Z) = Z + s * psi_u(psi_d(Z)), no non-linearity."""

    name: Literal["bottleneck"] = "bottleneck"
    dim: int = Field(16, gt=0)
    """Bottleneck width (Table 2: 4, 8, 16, 32)."""
    groups: int = Field(2, gt=0)
    """Groups p of the grouped projections (Table 2: 2 or 4)."""
    grouped: Literal["up", "both"] = "both"
    """Which projections are group-wise: the paper's text groups psi_u; the seed code both."""
    scale: float = 1.0
    """Constant factor s on the adapter branch."""


class RouterConfig(AdapterConfig):
    """LaVIN's Mixture-of-Modality adapter (RepAdapter router)."""

    name: Literal["router"] = "router"
    dim: int = Field(8, gt=0)
    groups: int = Field(2, gt=0)
    temperature: float = Field(10.0, gt=0)
    """Softmax temperature t of the routing weights (LaVIN: 10 for 7B, 5 for 13B)."""
    dropout: float = Field(0.1, ge=0, lt=1)
    scale: float = 1.0


class ConcatRouterConfig(AdapterConfig):
    """CSPNet-style concatenation [psi_1(Z), psi_2(Z)] (Table 3 rows 5-6)."""

    name: Literal["concat_router"] = "concat_router"
    dim: int = Field(8, gt=0)
    """Width of each branch's bottleneck; the concatenation has 2 * dim channels."""
    groups: int = Field(2, gt=0)
    temperature: float = Field(10.0, gt=0)
    dropout: float = Field(0.1, ge=0, lt=1)
    routed: bool = True
    """Scale each branch by its routing weight before the concatenation. The paper does not say
    how rows 5 and 6 differ; we read row 5 as routed and row 6 as plain concatenation."""
    scale: float = 1.0


class LohaConfig(AdapterConfig):
    """LoHa operators W = (X1 Y1^T) * (X2 Y2^T) as adapters (Table 3 rows 7-9)."""

    name: Literal["loha"] = "loha"
    variant: Literal[1, 2, 3] = 1
    """1: two full-width LoHa convs mixed by routing weights (eq. 6); 2: the router adapter with
    LoHa convs; 3: phi_L1(SiLU(phi_L2(Z))) + Z (eq. 7)."""
    rank: int = Field(4, gt=0)
    """Rank of each low-rank factor pair."""
    dim: int = Field(8, gt=0)
    """Bottleneck width (variants 2 and 3)."""
    temperature: float = Field(10.0, gt=0)
    dropout: float = Field(0.1, ge=0, lt=1)
    scale: float = 1.0


class LoraRepConfig(AdapterConfig):
    """LoRA in the LLM (peft) + RepAdapter in the vision tower (Table 3 row 10)."""

    name: Literal["lora_rep"] = "lora_rep"
    lora_rank: int = Field(8, gt=0)
    lora_alpha: float = Field(16.0, gt=0)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    """LLM linear layers that get LoRA."""
    dim: int = Field(8, gt=0)
    """RepAdapter width in the vision tower."""
    groups: int = Field(2, gt=0)
    dropout: float = Field(0.1, ge=0, lt=1)
    scale: float = 1.0


class BottleneckScaledConfig(AdapterConfig):
    """Bottleneck Adapter with dynamic weight factors (Table 3 row 11)."""

    name: Literal["bottleneck_scaled"] = "bottleneck_scaled"
    dim: int = Field(16, gt=0)
    groups: int = Field(2, gt=0)
    grouped: Literal["up", "both"] = "both"
    temperature: float = Field(10.0, gt=0)
    scale: float = 1.0


ADAPTER_CONFIGS: dict[str, type[AdapterConfig]] = {
    cls.model_fields["name"].default: cls
    for cls in (
        BottleneckConfig,
        RouterConfig,
        ConcatRouterConfig,
        LohaConfig,
        LoraRepConfig,
        BottleneckScaledConfig,
    )
}


def adapter_names() -> list[str]:
    """Short names of all registered adapters."""
    return list(ADAPTER_CONFIGS)


def validate_adapter_config(data: dict[str, Any] | AdapterConfig) -> AdapterConfig:
    """Validate an adapter section, dispatching on ``data["name"]``.

    Raises:
        ValueError: no or unknown ``name`` (the message lists the allowed names), or a bad field.
    """
    if isinstance(data, AdapterConfig):
        return data
    if not isinstance(data, dict) or "name" not in data:
        raise ValueError(f"adapter section needs a 'name'; allowed: {', '.join(adapter_names())}")
    name = data["name"]
    if not isinstance(name, str) or name not in ADAPTER_CONFIGS:
        raise ValueError(f"unknown adapter {name!r}; allowed: {', '.join(adapter_names())}")
    return ADAPTER_CONFIGS[name].model_validate(data)
