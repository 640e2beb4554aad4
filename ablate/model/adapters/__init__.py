"""Adapters by short name: one package per method, its config torch-free, its layers lazy.

The configs are re-exported here for convenience; a new method needs no line here (see
:mod:`ablate.model.adapters.registry`).
"""

from ablate.model.adapters.bottleneck import BottleneckConfig
from ablate.model.adapters.bottleneck_scaled import BottleneckScaledConfig
from ablate.model.adapters.concat_router import ConcatRouterConfig
from ablate.model.adapters.configs import (
    AdapterConfig,
    PlacementSpec,
    adapter_names,
    validate_adapter_config,
)
from ablate.model.adapters.loha import LohaConfig
from ablate.model.adapters.lora_rep import LoraRepConfig
from ablate.model.adapters.router import RouterConfig

__all__ = [
    "AdapterConfig",
    "BottleneckConfig",
    "BottleneckScaledConfig",
    "ConcatRouterConfig",
    "LohaConfig",
    "LoraRepConfig",
    "PlacementSpec",
    "RouterConfig",
    "adapter_names",
    "validate_adapter_config",
]
