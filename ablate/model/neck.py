"""The visual neck and the modality token: the only non-adapter modules that train.

Visual neck (paper eq. 3): V' = rho(V W_v + b_v) W_t + b_t with a small width d_v (128), mapping the
tapped [cls] tokens (width of the vision tower) to the LLM's width. LaVIN's code uses SiLU as rho;
the paper names SwiGLU, which here gates with a second projection of the same width
(``silu(V W_v + b_v) * (V W_g + b_g)``), doubling the first projection's parameters.

Both projections are initialised as the seed's ``AdapterMLP`` (``lavin/model.py``): xavier-uniform
weights, zero biases.

Modality token u_m (paper eq. 4): a 2-row embedding (0: text-only, 1: has image) prepended at
position 0 of the LLM input; the LLM's routers read it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ablate.model.spec import NeckSpec


class VisualNeck(nn.Module):
    """V' = rho(V W_v + b_v) W_t + b_t: (B, n, d_vision) -> (B, n, d_llm)."""

    def __init__(self, vision_width: int, llm_width: int, spec: NeckSpec) -> None:
        super().__init__()
        self.act = spec.act
        gate = 2 if spec.act == "swiglu" else 1
        self.proj_in = nn.Linear(vision_width, gate * spec.dim)  # W_v, b_v (and W_g, b_g)
        self.proj_out = nn.Linear(spec.dim, llm_width)  # W_t, b_t
        for proj in (self.proj_in, self.proj_out):
            nn.init.xavier_uniform_(proj.weight)
            nn.init.zeros_(proj.bias)

    def forward(self, v: torch.Tensor) -> torch.Tensor:  # (B, n, d_vision)
        """Map tapped [cls] tokens to LLM-width visual tokens."""
        h = self.proj_in(v.to(self.proj_in.weight.dtype))  # (B, n, gate * d_v)
        if self.act == "swiglu":
            a, g = h.chunk(2, dim=-1)
            h = F.silu(a) * g  # (B, n, d_v)
        else:
            h = F.silu(h)
        return self.proj_out(h)  # (B, n, d_llm)


class ModalityToken(nn.Module):
    """u_m: one learned token per modality (0: text-only, 1: has image).

    Initialised N(0, 1), ``nn.Embedding``'s default, as the seed's ``adapter_modality_embedding``.
    With the isolating mask nothing reads u_m unless an LLM router does: under the Bottleneck
    Adapter it gets exactly zero gradient (in the seed too); ``describe_model`` reports it inert.
    """

    def __init__(self, llm_width: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(2, llm_width)

    def forward(self, has_image: torch.Tensor) -> torch.Tensor:  # (B,) bool -> (B, 1, d_llm)
        """One u_m token per sample, chosen by whether it has an image."""
        return self.embedding(has_image.long())[:, None, :]
