"""Bottleneck Adapter with dynamic weight factors (Table 3 row 11 of arXiv 2407.17813).

Citation: arXiv 2407.17813 section 4 ("we tried our mainline adapter with dynamic weight factors")
with the weight factors of LaVIN's Mixture-of-Modality adapter (Luo et al., NeurIPS 2023).

Our reading: the BA of :mod:`ablate.model.adapters.bottleneck` (grouped down-projection, no
non-linearity, no dropout) with two grouped up-projections mixed by routing weights
softmax(W_r h / t): Z + s * (w0 U1(D(Z)) + w1 U2(D(Z))), h being u_m in the LLM and, in the ViT,
every token or [cls] (``vision_routing``). It differs from ``router`` by the BA's grouped
down-projection, its width (16) and the missing dropout.
"""

from __future__ import annotations

import torch

from ablate.model.adapters.base import (
    Adapter,
    Conv1x1,
    RoutingState,
    init_down_,
    routing_head,
    zero_,
)
from ablate.model.adapters.bottleneck_scaled import BottleneckScaledConfig


class ScaledBottleneckAdapter(Adapter):
    """Z + s * (w0 U1(D(Z)) + w1 U2(D(Z))), both U zero-init."""

    def __init__(
        self, width: int, config: BottleneckScaledConfig, tower: str, state: RoutingState | None
    ) -> None:
        super().__init__()
        down_groups = config.groups if config.grouped == "both" else 1
        self.down = init_down_(Conv1x1(width, config.dim, groups=down_groups))
        self.up_1 = zero_(Conv1x1(config.dim, width, groups=config.groups))
        self.up_2 = zero_(Conv1x1(config.dim, width, groups=config.groups))
        self.router = routing_head(width, config.temperature, config.vision_routing, tower, state)
        self.scale = config.scale

    def branch(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, d)
        """The routed residual update (zero at init)."""
        w = self.router(x)  # (B, T or 1, 2)
        h = self.down(x)  # (B, T, dim)
        mixed = self.up_1(h) * w[..., 0:1] + self.up_2(h) * w[..., 1:2]  # (B, T, d)
        return mixed * self.scale


def block_adapter(
    config: BottleneckScaledConfig, width: int, tower: str, state: RoutingState | None
) -> Adapter:
    """The adapter of one block input of ``tower`` (``"llm"`` or ``"vision"``)."""
    return ScaledBottleneckAdapter(width, config, tower, state)
