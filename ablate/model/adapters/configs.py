"""Adapter configurations, one per method, chosen by short name (``adapter: {name: bottleneck}``).

The configs live apart from the torch modules so that validating a spec, computing a run id or
printing ``ablate status`` never imports torch; each method's module
(:mod:`ablate.model.adapters.bottleneck`, ...) holds the implementation and its paper citation.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from ablate.spec.base import SpecModel

Site = Literal["attn", "mlp"]


class PlacementSpec(SpecModel):
    """Where adapters go: which towers, and before which sub-layers of every block."""

    llm: bool = True
    """Adapt every decoder block of the LLM."""
    vision: bool | Literal["after_attn"] = True
    """Adapt every block of the vision tower (gradients reach it through the LLM). ``after_attn``
    moves the attention site's adapter onto the attention output, inside the residual:
    x + adapter(attn(ln_1 x)), as the seed's ALIP run (77cacc3 ``forward_alip``, Table 3 row 3)."""
    before: tuple[Site, ...] = ("attn",)
    """Insert before the attention and/or the MLP of each block (paper: before attention)."""

    @field_validator("vision", mode="before")
    @classmethod
    def _vision_value(cls, value: Any) -> Any:
        # exact values only: pydantic would otherwise read "yes" or 1 as True
        if isinstance(value, bool) or value == "after_attn":
            return value
        raise ValueError(f"placement.vision must be one of: true, false, after_attn; got {value!r}")

    @model_validator(mode="after")
    def _non_empty(self) -> PlacementSpec:
        if not self.before:
            raise ValueError("placement.before must name at least one of: attn, mlp")
        if len(set(self.before)) != len(self.before):
            raise ValueError(f"placement.before repeats a site: {self.before}")
        if self.vision == "after_attn" and "attn" not in self.before:
            raise ValueError("placement.vision: after_attn moves the attn site; add attn to before")
        return self


class AdapterConfig(SpecModel):
    """Fields every adapter shares."""

    name: str
    """Registry short name of the method."""
    placement: PlacementSpec = PlacementSpec()
    """Towers and sites the adapter is inserted at."""
    llm_block_adapters: ClassVar[bool] = True
    """Whether the LLM's blocks get this config's adapters (LoRA changes the LLM another way)."""


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


class RoutedConfig(AdapterConfig):
    """Fields of every adapter whose weights are mixed by LaVIN-style routing weights."""

    temperature: float = Field(10.0, gt=0)
    """Softmax temperature t of the routing weights (LaVIN: 10 for 7B, 5 for 13B)."""
    vision_routing: Literal["per_token", "cls"] = "per_token"
    """Which hidden state routes in the vision tower. LaVIN's ViT is sequence-first (L, N, D), so
    its ``expert_weights(x[:, 0])`` reads every token of image 0: at batch 1, what the seed ran,
    each token is routed by its own state (``per_token``, the reference). ``cls``: one weight pair
    per image from its [cls] token. LLM routers always read u_m, one pair per sample."""


class RouterConfig(RoutedConfig):
    """LaVIN's Mixture-of-Modality adapter (RepAdapter router)."""

    name: Literal["router"] = "router"
    dim: int = Field(8, gt=0)
    groups: int = Field(2, gt=0)
    dropout: float = Field(0.1, ge=0, lt=1)
    scale: float = 1.0


class ConcatRouterConfig(RoutedConfig):
    """CSPNet-style concatenation [psi_1(Z), psi_2(Z)] (Table 3 rows 5-6)."""

    name: Literal["concat_router"] = "concat_router"
    dim: int = Field(8, gt=0)
    """Width of each branch's bottleneck; the concatenation has 2 * dim channels."""
    groups: int = Field(2, gt=0)
    dropout: float = Field(0.1, ge=0, lt=1)
    routed: bool = True
    """Scale each branch by its routing weight before the concatenation. The paper does not say
    how rows 5 and 6 differ; we read row 5 as routed and row 6 as plain concatenation."""
    scale: float = 1.0


class LohaConfig(RoutedConfig):
    """LoHa operators (Hadamard products of low-rank weights) as adapters (Table 3 rows 7-9)."""

    name: Literal["loha"] = "loha"
    variant: Literal[1, 2, 3] = 1
    """1: two full-width LoHa convs mixed by routing weights (eq. 6); 2: the router adapter with
    LoHa convs; 3: phi_L1(SiLU(phi_L2(Z))) + Z (eq. 7)."""
    form: Literal["fedpara", "hadamard"] = "fedpara"
    """``fedpara``: the seed's ``util/loha.py`` (948411c), W = W1 * W2 with each W_j a Tucker
    product einsum("xyz,xo,yi->oiz", T, O, I), no bias. ``hadamard``: our reading of the paper,
    W = (X1 Y1^T) * (X2 Y2^T) plus a bias, X2 zero so the adapter is the identity at init."""
    rank: int = Field(1, gt=0)
    """Rank of each low-rank factor (the seed's ``low_rank = 1``)."""
    init: Literal["normal", "zeros"] = "normal"
    """Init of the ``fedpara`` factors. ``normal`` (948411c, in place when the LoHa runs were
    made): N(0, 2 / fan_in) per tensor, so W is random and the adapter is NOT the identity at init.
    ``zeros`` (614e590, the seed's final file): all zero, the identity, but every factor then gets
    zero gradient forever (each factor's gradient is a product of the others)."""
    dim: int = Field(8, gt=0)
    """Bottleneck width (variants 2 and 3)."""
    dropout: float = Field(0.1, ge=0, lt=1)
    scale: float = 1.0


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


class BottleneckScaledConfig(RoutedConfig):
    """Bottleneck Adapter with dynamic weight factors (Table 3 row 11)."""

    name: Literal["bottleneck_scaled"] = "bottleneck_scaled"
    dim: int = Field(16, gt=0)
    groups: int = Field(2, gt=0)
    grouped: Literal["up", "both"] = "both"
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
