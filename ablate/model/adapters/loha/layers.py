"""LoHa operators as adapters (Table 3 rows 7-9 of arXiv 2407.17813).

Citation: Hyeon-Woo et al., "FedPara: Low-rank Hadamard product for communication-efficient
federated learning" (ICLR 2022), as LoHa in LyCORIS/peft; arXiv 2407.17813 eq. 6-7.

Two forms of the LoHa 1x1 conv (``LohaConfig.form``):
  fedpara (default): the seed's ``util/loha.py`` (948411c), W = W1 * W2 with each factor a Tucker
     product W_j = einsum("xyz,xo,yi->oiz", T_j, O_j, I_j), T (r, r, 1), O (r, out), I (r, in),
     rank 1, no bias. ``init: normal`` (948411c, when the LoHa runs were made) draws every tensor
     from N(0, 2 / fan_in), so W is random and the adapter is not the identity at init;
     ``init: zeros`` (614e590, the final file) makes it the identity but every factor's gradient is
     a product of the other (zero) factors, so nothing ever trains. The seed never imports this
     file: the wiring into adapters below is the paper's text (eq. 6-7), not seed code.
  hadamard: our reading of the paper, W = (X1 Y1^T) * (X2 Y2^T) plus a bias, X2 zero so W = 0 at
     init (the identity) while the other factors still get gradients.
We write our own instead of peft's LoHa because peft's LoHa cannot wrap a 4-bit base layer (it
reads the shape from the packed weight), and because these are new modules, not a
re-parameterisation of existing ones.

Variants (``LohaConfig.variant``):
  1: Z + w1 f(Z, W1) + w2 f(Z, W2), two full-width LoHa convs, no down-scaling, LaVIN routing
     weights (eq. 6; the paper's equation omits the residual, we keep it so a zero operator is
     the identity);
  2: LaVIN's router adapter with its three convs replaced by LoHa convs;
  3: Z + phi_L1(SiLU(phi_L2(Z))), no routing (eq. 7).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ablate.model.adapters.base import Adapter, RoutingState, routing_head
from ablate.model.adapters.loha import LohaConfig


class LohaConv1x1(nn.Module):
    """``form: hadamard``: a dense 1x1 conv with weight (X1 Y1^T) * (X2 Y2^T) plus a bias."""

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


class FedParaLowRank(nn.Module):
    """One factor of the seed's LoHa (948411c ``LowRank``): einsum("xyz,xo,yi->oiz", T, O, I)."""

    def __init__(self, in_features: int, out_features: int, rank: int, init: str) -> None:
        super().__init__()
        self.T = nn.Parameter(torch.empty(rank, rank, 1))  # kernel size 1
        self.O = nn.Parameter(torch.empty(rank, out_features))
        self.I = nn.Parameter(torch.empty(rank, in_features))
        for p in (self.T, self.O, self.I):
            if init == "zeros":
                nn.init.zeros_(p)  # 614e590
            else:
                # 948411c: relu gain / sqrt(torch's fan_in), i.e. size(1) * receptive field
                nn.init.normal_(p, 0.0, math.sqrt(2.0) / math.sqrt(p[0].numel()))

    def forward(self) -> torch.Tensor:  # (out, in, 1)
        """The factor's weight."""
        return torch.einsum("xyz,xo,yi->oiz", self.T, self.O, self.I)


class FedParaConv1x1(nn.Module):
    """The seed's LoHa ``Conv1d`` at kernel 1 and no bias: W = W1() * W2() (Hadamard product)."""

    def __init__(self, in_features: int, out_features: int, rank: int, init: str) -> None:
        super().__init__()
        self.W1 = FedParaLowRank(in_features, out_features, rank, init)
        self.W2 = FedParaLowRank(in_features, out_features, rank, init)

    def weight(self) -> torch.Tensor:  # (out, in)
        """The Hadamard product of the two Tucker factors."""
        return (self.W1() * self.W2())[..., 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, in) -> (B, T, out)
        """Apply the weight to every token (the seed's ``F.conv1d`` at kernel 1)."""
        return torch.nn.functional.linear(x, self.weight())


def loha_conv(config: LohaConfig, in_features: int, out_features: int, zero: bool) -> nn.Module:
    """A LoHa 1x1 conv of ``config.form``, (B, T, in) -> (B, T, out).

    ``zero`` (an up-projection) applies to ``hadamard`` only; every ``fedpara`` conv takes
    ``config.init``, as every conv built from the seed's file would.
    """
    if config.form == "fedpara":
        return FedParaConv1x1(in_features, out_features, config.rank, config.init)
    return LohaConv1x1(in_features, out_features, config.rank, zero=zero)


class LohaRoutedPair(Adapter):
    """Variant 1: Z + w1 f(Z, W1) + w2 f(Z, W2) with full-width LoHa convs."""

    def __init__(
        self, width: int, config: LohaConfig, tower: str, state: RoutingState | None
    ) -> None:
        super().__init__()
        self.conv_1 = loha_conv(config, width, width, zero=True)
        self.conv_2 = loha_conv(config, width, width, zero=True)
        self.router = routing_head(width, config.temperature, config.vision_routing, tower, state)
        self.scale = config.scale

    def branch(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, d)
        """The routed residual update (zero at init unless fedpara + normal)."""
        w = self.router(x)  # (B, T or 1, 2)
        mixed = self.conv_1(x) * w[..., 0:1] + self.conv_2(x) * w[..., 1:2]  # (B, T, d)
        return mixed * self.scale


class LohaRouter(Adapter):
    """Variant 2: LaVIN's router adapter with LoHa convs (A down, B and D up)."""

    def __init__(
        self, width: int, config: LohaConfig, tower: str, state: RoutingState | None
    ) -> None:
        super().__init__()
        self.conv_A = loha_conv(config, width, config.dim, zero=False)
        self.conv_B = loha_conv(config, config.dim, width, zero=True)
        self.conv_D = loha_conv(config, config.dim, width, zero=True)
        self.router = routing_head(width, config.temperature, config.vision_routing, tower, state)
        self.dropout = nn.Dropout(config.dropout)
        self.scale = config.scale

    def branch(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, d)
        """The routed residual update (zero at init unless fedpara + normal)."""
        w = self.router(x)  # (B, T or 1, 2)
        h = self.dropout(self.conv_A(x))  # (B, T, dim)
        mixed = self.conv_B(h) * w[..., 0:1] + self.conv_D(h) * w[..., 1:2]  # (B, T, d)
        return mixed * self.scale


class LohaSiLU(Adapter):
    """Variant 3: Z + phi_L1(SiLU(phi_L2(Z))), no weight factors (eq. 7)."""

    def __init__(self, width: int, config: LohaConfig) -> None:
        super().__init__()
        self.phi_L2 = loha_conv(config, width, config.dim, zero=False)
        self.phi_L1 = loha_conv(config, config.dim, width, zero=True)
        self.scale = config.scale

    def branch(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, d)
        """The residual update (zero at init unless fedpara + normal)."""
        return self.phi_L1(torch.nn.functional.silu(self.phi_L2(x))) * self.scale


def block_adapter(
    config: LohaConfig, width: int, tower: str, state: RoutingState | None
) -> Adapter:
    """The adapter of one block input of ``tower`` (``"llm"`` or ``"vision"``)."""
    if config.variant == 1:
        return LohaRoutedPair(width, config, tower, state)
    if config.variant == 2:
        return LohaRouter(width, config, tower, state)
    return LohaSiLU(width, config)
