"""Bottleneck Adapter (BA), the paper's main adapter.

Citation: "Enhancing Model Performance: Another Approach to Vision-Language Instruction Tuning",
arXiv 2407.17813, eq. 1-2: g(Z) = Z + psi_u(psi_d(Z)), no non-linearity, group-wise up-projection.
The seed code's final version groups both projections (1x1 convs, groups=2): ``grouped`` picks.
"""

from __future__ import annotations

import torch

from ablate.model.adapters.base import Adapter, Conv1x1, RoutingState, init_down_, zero_
from ablate.model.adapters.bottleneck import BottleneckConfig


class BottleneckAdapter(Adapter):
    """Z + s * psi_u(psi_d(Z)) with (grouped) 1x1 projections and a zero-init up-projection."""

    def __init__(self, width: int, config: BottleneckConfig) -> None:
        super().__init__()
        down_groups = config.groups if config.grouped == "both" else 1
        self.down = init_down_(Conv1x1(width, config.dim, groups=down_groups))
        self.up = zero_(Conv1x1(config.dim, width, groups=config.groups))
        self.scale = config.scale

    def branch(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, d)
        """The residual update (zero at init)."""
        return self.up(self.down(x)) * self.scale  # (B, T, dim) -> (B, T, d)


def block_adapter(
    config: BottleneckConfig, width: int, tower: str, state: RoutingState | None
) -> Adapter:
    """The adapter of one block input of ``tower`` (``"llm"`` or ``"vision"``)."""
    return BottleneckAdapter(width, config)
