"""Registry of adapter implementations by short name (the torch side of ``configs``).

Each method lives in its own module that registers an :class:`AdapterMethod` on import; modules
are imported lazily so that importing the registry stays cheap.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ablate.model.adapters.configs import AdapterConfig, adapter_names

if TYPE_CHECKING:
    from torch import nn

    from ablate.model.adapters.base import Adapter, RoutingState

_MODULES: dict[str, str] = {
    "bottleneck": "ablate.model.adapters.bottleneck",
    "router": "ablate.model.adapters.router",
    "concat_router": "ablate.model.adapters.concat_router",
    "loha": "ablate.model.adapters.loha",
    "lora_rep": "ablate.model.adapters.lora_rep",
    "bottleneck_scaled": "ablate.model.adapters.bottleneck_scaled",
}
_METHODS: dict[str, AdapterMethod] = {}


@dataclass(frozen=True)
class AdapterMethod:
    """One adapter method.

    Attributes:
        name: registry short name (the config's ``name``).
        citation: the paper (and equation) the method follows.
        block_adapter: ``(config, width, tower, routing_state) -> Adapter`` for one block input;
            ``tower`` is ``"llm"`` or ``"vision"`` (a method may use different modules per tower).
        adapt_llm: optional ``(config, llm) -> list[Parameter]`` for methods that change the LLM
            another way (LoRA through peft); when set, no block adapters go into the LLM.
    """

    name: str
    citation: str
    block_adapter: Callable[[Any, int, str, RoutingState | None], Adapter]
    adapt_llm: Callable[[Any, nn.Module], list[nn.Parameter]] | None = None


def register_method(method: AdapterMethod) -> AdapterMethod:
    """Register ``method`` under its name."""
    _METHODS[method.name] = method
    return method


def get_method(config: AdapterConfig | str) -> AdapterMethod:
    """The implementation of an adapter config (or short name).

    Raises:
        ValueError: unknown name; the message lists the allowed names.
    """
    name = config if isinstance(config, str) else config.name
    if name not in _MODULES:
        raise ValueError(f"unknown adapter {name!r}; allowed: {', '.join(adapter_names())}")
    if name not in _METHODS:
        importlib.import_module(_MODULES[name])
    return _METHODS[name]
