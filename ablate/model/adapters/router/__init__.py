"""LaVIN's Mixture-of-Modality adapter (RepAdapter router) and the plain RepAdapter.

The config and the registered name live here (torch-free: validating a spec never imports torch);
the modules are in :mod:`ablate.model.adapters.router.layers`, imported when a model is
built.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ablate.model.adapters.configs import RoutedConfig
from ablate.model.adapters.registry import AdapterMethod, register_method


class RouterConfig(RoutedConfig):
    """LaVIN's Mixture-of-Modality adapter (RepAdapter router)."""

    name: Literal["router"] = "router"
    dim: int = Field(8, gt=0)
    groups: int = Field(2, gt=0)
    dropout: float = Field(0.1, ge=0, lt=1)
    scale: float = 1.0


METHOD = register_method(
    AdapterMethod(
        name="router",
        config_cls=RouterConfig,
        citation="LaVIN (Luo et al., NeurIPS 2023), Mixture-of-Modality adapter RepAdapter_Router",
        layers=f"{__name__}.layers",
    )
)
