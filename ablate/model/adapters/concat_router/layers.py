"""CSPNet-style concatenating adapter (Table 3 rows 5-6 of arXiv 2407.17813).

Citation: arXiv 2407.17813 section 4 ("Motivated by CSPNet, we did concatenation of features in
adapter ... equation 1 was modified to concatenate the features as [psi_1(Z), psi_2(Z)]"); Wang et
al., "CSPNet" (CVPRW 2020); routing as in LaVIN's RepAdapter_Router.

Our reading: two down-projections psi_1 (dense) and psi_2 (grouped) of width ``dim`` each, their
outputs concatenated to 2*dim channels and mapped back by one grouped, zero-initialised
up-projection: Z + s * U([w0 psi_1(Z), w1 psi_2(Z)]). The paper does not say how rows 5 and 6
differ;
``routed`` switches the routing weights w (LaVIN-style) on or off (off: w0 = w1 = 1).
"""

from __future__ import annotations

import torch
from torch import nn

from ablate.model.adapters.base import (
    Adapter,
    Conv1x1,
    RoutingState,
    init_down_,
    routing_head,
    zero_,
)
from ablate.model.adapters.concat_router import ConcatRouterConfig


class ConcatRouterAdapter(Adapter):
    """Z + s * U([w0 psi_1(Z), w1 psi_2(Z)]) with a zero-init up-projection U."""

    def __init__(
        self, width: int, config: ConcatRouterConfig, tower: str, state: RoutingState | None
    ) -> None:
        super().__init__()
        self.psi_1 = init_down_(Conv1x1(width, config.dim, groups=1))
        self.psi_2 = init_down_(Conv1x1(width, config.dim, groups=config.groups))
        self.up = zero_(Conv1x1(2 * config.dim, width, groups=config.groups))
        self.router = (
            routing_head(width, config.temperature, config.vision_routing, tower, state)
            if config.routed
            else None
        )
        self.dropout = nn.Dropout(config.dropout)
        self.scale = config.scale

    def branch(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, d)
        """The residual update (zero at init)."""
        a, b = self.psi_1(x), self.psi_2(x)  # (B, T, dim) each
        if self.router is not None:
            w = self.router(x)  # (B, T or 1, 2)
            a, b = a * w[..., 0:1], b * w[..., 1:2]  # (B, T, dim) each
        h = self.dropout(torch.cat([a, b], dim=-1))  # (B, T, 2 dim)
        return self.up(h) * self.scale  # (B, T, d)


def block_adapter(
    config: ConcatRouterConfig, width: int, tower: str, state: RoutingState | None
) -> Adapter:
    """The adapter of one block input of ``tower`` (``"llm"`` or ``"vision"``)."""
    return ConcatRouterAdapter(width, config, tower, state)
