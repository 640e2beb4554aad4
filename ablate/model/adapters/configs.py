"""What every adapter config shares, and validation by short name (``adapter: {name: router}``).

Each method is a package of its own (:mod:`ablate.model.adapters.bottleneck`, ...): its
``__init__`` holds its config (a subclass of :class:`AdapterConfig` here), its citation and its
registration, torch-free, so that validating a spec, computing a run id or printing ``ablate
status`` never imports torch; its ``layers`` module holds the torch implementation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from ablate.errors import did_you_mean
from ablate.spec.base import SpecModel, invalid_at

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

    @classmethod
    def concrete_schema(cls, data: Mapping[str, Any]) -> type[AdapterConfig]:
        """The schema an adapter section written as ``data`` is validated by: its ``name``'s.

        Error messages list that schema's fields as the allowed keys (``adapter.dimm`` names
        ``dim, groups, ...``, not only the shared ``name, placement``).
        """
        from ablate.model.adapters.registry import get_method

        name = data.get("name")
        try:
            return get_method(name).config_cls if isinstance(name, str) else cls
        except (KeyError, ValueError):
            return cls


class RoutedConfig(AdapterConfig):
    """Fields of every adapter whose weights are mixed by LaVIN-style routing weights."""

    temperature: float = Field(10.0, gt=0)
    """Softmax temperature t of the routing weights (LaVIN: 10 for 7B, 5 for 13B)."""
    vision_routing: Literal["per_token", "cls"] = "per_token"
    """Which hidden state routes in the vision tower. LaVIN's ViT is sequence-first (L, N, D), so
    its ``expert_weights(x[:, 0])`` reads every token of image 0: at batch 1, what the seed ran,
    each token is routed by its own state (``per_token``, the reference). ``cls``: one weight pair
    per image from its [cls] token. LLM routers always read u_m, one pair per sample."""


def adapter_names() -> list[str]:
    """Short names of all registered adapters."""
    from ablate.model.adapters.registry import method_names

    return method_names()


def validate_adapter_config(data: dict[str, Any] | AdapterConfig) -> AdapterConfig:
    """Validate an adapter section by the schema its ``name`` selects.

    Raises:
        ValueError: no or unknown ``name`` (the message lists the allowed names), or a bad field.
    """
    if isinstance(data, AdapterConfig):
        return data
    if not isinstance(data, dict) or "name" not in data:
        raise ValueError(f"adapter section needs a 'name'; allowed: {', '.join(adapter_names())}")
    schema = AdapterConfig.concrete_schema(data)
    if schema is AdapterConfig:  # an unknown name: blamed on the name's own line
        name, names = data["name"], adapter_names()
        hint = did_you_mean(str(name), names)
        message = f"unknown adapter {name!r}{hint}; allowed: {', '.join(names)}"
        raise invalid_at(AdapterConfig, ("name",), message, None)  # the message names the value
    return schema.model_validate(data)
