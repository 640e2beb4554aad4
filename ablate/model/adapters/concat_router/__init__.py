"""CSPNet-style concatenating adapter (Table 3 rows 5-6 of arXiv 2407.17813).

The config and the registered name live here (torch-free: validating a spec never imports torch);
the modules are in :mod:`ablate.model.adapters.concat_router.layers`, imported when a model is
built.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ablate.model.adapters.configs import RoutedConfig
from ablate.model.adapters.registry import AdapterMethod, register_method


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


METHOD = register_method(
    AdapterMethod(
        name="concat_router",
        config_cls=ConcatRouterConfig,
        citation="arXiv 2407.17813 Table 3 rows 5-6 (concatenation, after CSPNet)",
        layers=f"{__name__}.layers",
    )
)
