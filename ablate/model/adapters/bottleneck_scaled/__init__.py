"""Bottleneck Adapter with dynamic weight factors (Table 3 row 11 of arXiv 2407.17813).

The config and the registered name live here (torch-free: validating a spec never imports torch);
the modules are in :mod:`ablate.model.adapters.bottleneck_scaled.layers`, imported when a model is
built.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ablate.model.adapters.configs import RoutedConfig
from ablate.model.adapters.registry import AdapterMethod, register_method


class BottleneckScaledConfig(RoutedConfig):
    """Bottleneck Adapter with dynamic weight factors (Table 3 row 11)."""

    name: Literal["bottleneck_scaled"] = "bottleneck_scaled"
    dim: int = Field(16, gt=0)
    groups: int = Field(2, gt=0)
    grouped: Literal["up", "both"] = "both"
    scale: float = 1.0


METHOD = register_method(
    AdapterMethod(
        name="bottleneck_scaled",
        config_cls=BottleneckScaledConfig,
        citation="arXiv 2407.17813 Table 3 row 11 (BA with dynamic weight factors)",
        layers=f"{__name__}.layers",
    )
)
