"""LaVIN's Mixture-of-Modality adapter (RepAdapter router) and the plain RepAdapter.

Citations: Luo et al., "Cheap and Quick: Efficient Vision-Language Instruction Tuning for Large
Language Models" (LaVIN, NeurIPS 2023), ``RepAdapter_Router``; Luo et al., "Towards Efficient Visual
Adaption via Structural Re-parameterization" (RepAdapter, 2023).

Router: a shared dense down-projection, dropout, two grouped up-projections ("experts") mixed by
routing weights softmax(W_r h / t): x + s * (w0 B(x') + w1 D(x')). h is the modality token u_m in
the LLM (see :class:`~ablate.model.adapters.base.RoutingState`); in the ViT every token by default
(``vision_routing: per_token``, LaVIN's sequence-first ViT at batch 1) or [cls] (``cls``).
Parameters at width d, dim h, groups g: (d h + h) + 2 (h d / g + d) + (2 d + 2); with d=4096, h=8,
g=2: 81,930 per block, which gives LaVIN's 3.78M at 7B.

RepAdapter: LaVIN's non-router RepAdapter returns B(A(x)) without a residual (a trap: it is not the
identity at init); ours adds the residual, as in the RepAdapter paper, so every adapter starts as
the identity.
"""

from __future__ import annotations

import torch
from torch import nn

from ablate.model.adapters.base import (
    Adapter,
    Conv1x1,
    RoutingHead,
    RoutingState,
    init_down_,
    routing_head,
    zero_,
)
from ablate.model.adapters.router import RouterConfig


class RouterAdapter(Adapter):
    """LaVIN RepAdapter_Router: x + s * (w0 B(x') + w1 D(x')), x' = dropout(A(x))."""

    def __init__(
        self,
        width: int,
        dim: int,
        groups: int,
        dropout: float,
        scale: float,
        router: RoutingHead,
    ) -> None:
        super().__init__()
        self.conv_A = init_down_(Conv1x1(width, dim, groups=1))
        self.conv_B = zero_(Conv1x1(dim, width, groups=groups))
        self.conv_D = zero_(Conv1x1(dim, width, groups=groups))
        self.router = router
        self.dropout = nn.Dropout(dropout)
        self.scale = scale

    def branch(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, d)
        """The routed residual update (zero at init)."""
        w = self.router(x)  # (B, T or 1, 2)
        h = self.dropout(self.conv_A(x))  # (B, T, dim)
        mixed = self.conv_B(h) * w[..., 0:1] + self.conv_D(h) * w[..., 1:2]  # (B, T, d)
        return mixed * self.scale  # (B, T, d)


class RepAdapter(Adapter):
    """RepAdapter: x + s * B(dropout(A(x))), dense down, grouped zero-init up."""

    def __init__(self, width: int, dim: int, groups: int, dropout: float, scale: float) -> None:
        super().__init__()
        self.conv_A = init_down_(Conv1x1(width, dim, groups=1))
        self.conv_B = zero_(Conv1x1(dim, width, groups=groups))
        self.dropout = nn.Dropout(dropout)
        self.scale = scale

    def branch(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, d)
        """The residual update (zero at init)."""
        return self.conv_B(self.dropout(self.conv_A(x))) * self.scale


def block_adapter(
    config: RouterConfig, width: int, tower: str, state: RoutingState | None
) -> Adapter:
    """The adapter of one block input of ``tower`` (``"llm"`` or ``"vision"``)."""
    router = routing_head(width, config.temperature, config.vision_routing, tower, state)
    return RouterAdapter(width, config.dim, config.groups, config.dropout, config.scale, router)
