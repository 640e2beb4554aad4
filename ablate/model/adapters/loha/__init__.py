"""LoHa operators as adapters (Table 3 rows 7-9 of arXiv 2407.17813).

The config and the registered name live here (torch-free: validating a spec never imports torch);
the modules are in :mod:`ablate.model.adapters.loha.layers`, imported when a model is
built.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ablate.model.adapters.configs import RoutedConfig
from ablate.model.adapters.registry import AdapterMethod, register_method


class LohaConfig(RoutedConfig):
    """LoHa operators (Hadamard products of low-rank weights) as adapters (Table 3 rows 7-9)."""

    name: Literal["loha"] = "loha"
    variant: Literal[1, 2, 3] = 1
    """1: two full-width LoHa convs mixed by routing weights (eq. 6); 2: the router adapter with
    LoHa convs; 3: phi_L1(SiLU(phi_L2(Z))) + Z (eq. 7)."""
    form: Literal["fedpara", "hadamard"] = "fedpara"
    """``fedpara``: the seed's ``util/loha.py`` (948411c), W = W1 * W2 with each W_j a Tucker
    product einsum("xyz,xo,yi->oiz", T, O, I), no bias. ``hadamard``: our reading of the paper,
    W = (X1 Y1^T) * (X2 Y2^T) plus a bias, X2 zero so the adapter is the identity at init."""
    rank: int = Field(1, gt=0)
    """Rank of each low-rank factor (the seed's ``low_rank = 1``)."""
    init: Literal["normal", "zeros"] = "normal"
    """Init of the ``fedpara`` factors. ``normal`` (948411c, in place when the LoHa runs were
    made): N(0, 2 / fan_in) per tensor, so W is random and the adapter is NOT the identity at init.
    ``zeros`` (614e590, the seed's final file): all zero, the identity, but every factor then gets
    zero gradient forever (each factor's gradient is a product of the others)."""
    dim: int = Field(8, gt=0)
    """Bottleneck width (variants 2 and 3)."""
    dropout: float = Field(0.1, ge=0, lt=1)
    scale: float = 1.0


METHOD = register_method(
    AdapterMethod(
        name="loha",
        config_cls=LohaConfig,
        citation="arXiv 2407.17813 Table 3 rows 7-9, eq. 6-7; LoHa from FedPara (ICLR 2022)",
        layers=f"{__name__}.layers",
    )
)
