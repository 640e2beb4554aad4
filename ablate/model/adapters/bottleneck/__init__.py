"""Bottleneck Adapter (BA), the paper's main adapter.

The config and the registered name live here (torch-free: validating a spec never imports torch);
the modules are in :mod:`ablate.model.adapters.bottleneck.layers`, imported when a model is
built.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ablate.model.adapters.configs import AdapterConfig
from ablate.model.adapters.registry import AdapterMethod, register_method


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


METHOD = register_method(
    AdapterMethod(
        name="bottleneck",
        config_cls=BottleneckConfig,
        citation="arXiv 2407.17813 eq. 1-2 (Bottleneck Adapter)",
        layers=f"{__name__}.layers",
    )
)
