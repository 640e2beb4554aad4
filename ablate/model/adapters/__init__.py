"""Adapters by short name: configs (torch-free) and their implementations (lazily imported)."""

from ablate.model.adapters.configs import (
    ADAPTER_CONFIGS,
    AdapterConfig,
    BottleneckConfig,
    BottleneckScaledConfig,
    ConcatRouterConfig,
    LohaConfig,
    LoraRepConfig,
    PlacementSpec,
    RouterConfig,
    adapter_names,
    validate_adapter_config,
)

__all__ = [
    "ADAPTER_CONFIGS",
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
