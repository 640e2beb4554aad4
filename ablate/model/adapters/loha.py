"""LoHa operators as adapters (Table 3 rows 7-9 of arXiv 2407.17813).

Citation: Hyeon-Woo et al., "FedPara: Low-rank Hadamard product for communication-efficient
federated learning" (ICLR 2022), as LoHa in LyCORIS/peft; arXiv 2407.17813 eq. 6-7.

A LoHa 1x1 conv has the weight W = (X1 Y1^T) * (X2 Y2^T) (Hadamard product of two rank-r products)
plus a bias. We write our own instead of peft's LoHa because peft's LoHa cannot wrap a 4-bit base
layer (it reads the shape from the packed weight), and because these are new modules, not a
re-parameterisation of existing ones. X2 is zero-initialised so W = 0 at init.

Variants (``LohaConfig.variant``):
  1: Z + w1 f(Z, W1) + w2 f(Z, W2), two full-width LoHa convs, no down-scaling, LaVIN routing
     weights (eq. 6; the paper's equation omits the residual, we keep it so the adapter starts as
     the identity);
  2: LaVIN's router adapter with its three convs replaced by LoHa convs;
  3: Z + phi_L1(SiLU(phi_L2(Z))), no routing (eq. 7).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ablate.model.adapters.base import Adapter, RoutingHead, RoutingState
from ablate.model.adapters.configs import LohaConfig
from ablate.model.adapters.registry import AdapterMethod, register_method


class LohaConv1x1(nn.Module):
    """A dense 1x1 conv whose weight is (X1 Y1^T) * (X2 Y2^T): (B, T, in) -> (B, T, out)."""

    def __init__(self, in_features: int, out_features: int, rank: int, zero: bool) -> None:
        super().__init__()
        self.x1 = nn.Parameter(torch.empty(out_features, rank))
        self.y1 = nn.Parameter(torch.empty(in_features, rank))
        self.x2 = nn.Parameter(torch.empty(out_features, rank))
        self.y2 = nn.Parameter(torch.empty(in_features, rank))
        self.bias = nn.Parameter(torch.zeros(out_features))
        std = 1.0 / math.sqrt(math.sqrt(in_features * rank))  # W entries ~ 1/sqrt(in) scale
        for p in (self.x1, self.y1, self.x2, self.y2):
            nn.init.normal_(p, std=std)
        if zero:
            nn.init.zeros_(self.x2)

    def weight(self) -> torch.Tensor:  # (out, in)
        """The Hadamard-product weight."""
        return (self.x1 @ self.y1.T) * (self.x2 @ self.y2.T)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, in) -> (B, T, out)
        """Apply the Hadamard-product weight."""
        return torch.nn.functional.linear(x, self.weight(), self.bias)


class LohaRoutedPair(Adapter):
    """Variant 1: Z + w1 f(Z, W1) + w2 f(Z, W2) with full-width LoHa convs."""

    def __init__(self, width: int, config: LohaConfig, state: RoutingState | None) -> None:
        super().__init__()
        self.conv_1 = LohaConv1x1(width, width, config.rank, zero=True)
        self.conv_2 = LohaConv1x1(width, width, config.rank, zero=True)
        self.router = RoutingHead(width, 2, config.temperature, state)
        self.scale = config.scale

    def branch(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, d)
        """The routed residual update (zero at init)."""
        w = self.router(x)  # (B, 2)
        mixed = self.conv_1(x) * w[:, 0, None, None] + self.conv_2(x) * w[:, 1, None, None]
        return mixed * self.scale


class LohaRouter(Adapter):
    """Variant 2: LaVIN's router adapter with LoHa convs (A down, B and D up)."""

    def __init__(self, width: int, config: LohaConfig, state: RoutingState | None) -> None:
        super().__init__()
        self.conv_A = LohaConv1x1(width, config.dim, config.rank, zero=False)
        self.conv_B = LohaConv1x1(config.dim, width, config.rank, zero=True)
        self.conv_D = LohaConv1x1(config.dim, width, config.rank, zero=True)
        self.router = RoutingHead(width, 2, config.temperature, state)
        self.dropout = nn.Dropout(config.dropout)
        self.scale = config.scale

    def branch(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, d)
        """The routed residual update (zero at init)."""
        w = self.router(x)  # (B, 2)
        h = self.dropout(self.conv_A(x))  # (B, T, dim)
        mixed = self.conv_B(h) * w[:, 0, None, None] + self.conv_D(h) * w[:, 1, None, None]
        return mixed * self.scale


class LohaSiLU(Adapter):
    """Variant 3: Z + phi_L1(SiLU(phi_L2(Z))), no weight factors (eq. 7)."""

    def __init__(self, width: int, config: LohaConfig) -> None:
        super().__init__()
        self.phi_L2 = LohaConv1x1(width, config.dim, config.rank, zero=False)
        self.phi_L1 = LohaConv1x1(config.dim, width, config.rank, zero=True)
        self.scale = config.scale

    def branch(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, d)
        """The residual update (zero at init)."""
        return self.phi_L1(torch.nn.functional.silu(self.phi_L2(x))) * self.scale


def _build(config: LohaConfig, width: int, tower: str, state: RoutingState | None) -> Adapter:
    if config.variant == 1:
        return LohaRoutedPair(width, config, state)
    if config.variant == 2:
        return LohaRouter(width, config, state)
    return LohaSiLU(width, config)


METHOD = register_method(
    AdapterMethod(
        name="loha",
        citation="arXiv 2407.17813 Table 3 rows 7-9, eq. 6-7; LoHa from FedPara (ICLR 2022)",
        block_adapter=_build,
    )
)
