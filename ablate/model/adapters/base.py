"""Building blocks every adapter shares: 1x1 (grouped) projections, routing heads, dtype handling.

Adapters keep their parameters in fp32: they are the master weights the optimiser updates, while the
frozen backbones run in bf16/fp16 or 4/8-bit. :class:`Adapter` casts the input to the parameters'
dtype and adds the branch back in the input's dtype, so a zero branch gives back the input bit for
bit. Under autocast the projections themselves run in the autocast dtype (bf16/fp16), not fp32: the
seed's adapters run inside ``with autocast():`` (fp16) too, so that is the reference, not a leak.

Routing (LaVIN's Mixture-of-Modality adaptation) reads hidden states to make mixing weights. In the
LLM it reads one per sample, the modality token u_m. In the vision tower it reads every token
(``per_token``, what LaVIN's sequence-first ViT did at batch 1) or the [cls] token (``cls``, one
per image). u_m is not in the LLM's input sequence when it is isolated (the model computes its
states apart, see :mod:`ablate.model.batch_layout`), and packed rows hold several samples, so a
:class:`RoutingState`, shared by all LLM routers and set by
:class:`~ablate.model.multimodal.MultimodalModel`, says where the routing weights come from and
which position uses which; generation reuses the weights of its prefill for the decode steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class RoutingState:
    """Where the routers of one tower read u_m, shared by all of them and set by the model.

    Routing weights are computed for S routing rows and handed to the positions of the input:

    - u_m apart (the seed's isolated u_m): the model first runs the LLM on u_m alone, one
      one-token row per modality (S = 2, ``record``); the sequence pass then ``reuse`` s those
      weights, position by position through ``token_route`` (1 for image samples, 0 for text).
    - u_m in the sequence (``isolate_modality_token: false``): ``um_index`` gives each sample's
      u_m position in the flattened (R * T) input; the weights (S = samples) reach every position
      of their sample through ``token_route``.

    A KV-cached generation records at prefill and reuses for its decode steps.

    Attributes:
        um_index: (k,) flat positions of u_m in the input, or None (row i's first token routes).
        token_route: (R, T) the routing row each position uses, or None (row i uses row i).
        record: keep the weights each router computes.
        reuse: use the recorded weights instead of computing new ones.
        cache: router id -> (S, n) weights recorded.
    """

    um_index: torch.Tensor | None = None
    token_route: torch.Tensor | None = None
    record: bool = False
    reuse: bool = False
    cache: dict[int, torch.Tensor] = field(default_factory=dict)

    def reset(self) -> None:
        """Nothing recorded, every router computing from its own input's first tokens."""
        self.um_index, self.token_route, self.record, self.reuse = None, None, False, False
        self.cache.clear()


class Conv1x1(nn.Conv1d):
    """A (grouped) linear map over the channel axis of (B, T, C) tensors, stored as a 1x1 conv.

    Stored as ``nn.Conv1d`` so parameter shapes (and counts) match LaVIN's and the seed code's
    checkpoints; applied to token-major tensors as a (batched) matmul, which is what a 1x1 conv
    computes: no transposes, and no convolution kernels (their backward was a quarter of a tiny
    CPU step). ``F.conv1d`` on the transposed input gives the same result (tested).
    """

    def __init__(self, in_features: int, out_features: int, groups: int = 1) -> None:
        if in_features % groups or out_features % groups:
            raise ValueError(
                f"groups={groups} must divide both widths (in {in_features}, out {out_features})"
            )
        super().__init__(in_features, out_features, kernel_size=1, groups=groups, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, C_in) -> (B, T, C_out)
        """Project the channels of token-major input."""
        weight = self.weight.squeeze(-1)  # (C_out, C_in / g)
        if self.groups == 1:
            return F.linear(x, weight, self.bias)
        g = self.groups
        xg = x.unflatten(-1, (g, -1))  # (B, T, g, C_in / g)
        wg = weight.unflatten(0, (g, -1))  # (g, C_out / g, C_in / g)
        y = torch.einsum("btgi,goi->btgo", xg, wg)  # (B, T, g, C_out / g)
        return y.flatten(-2) + self.bias.to(y.dtype)  # (B, T, C_out), in the autocast dtype


def zero_(module: nn.Module) -> nn.Module:
    """Zero every parameter of ``module`` (up-projections: the adapter starts as the identity)."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def init_down_(conv: nn.Conv1d) -> nn.Conv1d:
    """LaVIN's init of a down-projection: xavier-uniform weight, zero bias."""
    nn.init.xavier_uniform_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class RoutingHead(nn.Module):
    """softmax(W_r h / t): mixing weights from the routing token or from every token (LaVIN MMA).

    The weights come shaped (B, T', n) to broadcast against (B, T, d) branches: T' = 1 when one
    token routes the whole sample (u_m in the LLM, [cls] in the vision tower), T' = T when every
    token routes itself (``per_token``: LaVIN's ``expert_weights(x[:, 0])`` on its sequence-first
    ViT at batch 1, applied image by image).
    """

    def __init__(
        self,
        width: int,
        n_experts: int,
        temperature: float,
        state: RoutingState | None,
        per_token: bool = False,
    ) -> None:
        super().__init__()
        if per_token and state is not None:
            raise ValueError("per-token routing has no routing token to track: pass state=None")
        self.proj = nn.Linear(width, n_experts)
        self.temperature = temperature
        self.per_token = per_token
        # shared, not a submodule: one state object for all routers of a tower
        self._state = [state]

    @property
    def state(self) -> RoutingState | None:
        """The tower's routing state (None in the vision tower: always position 0)."""
        return self._state[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, d) -> (B, T or 1, n)
        """Routing weights of every token or sample (recorded / reused as the state says)."""
        if self.per_token:
            return torch.softmax(self.proj(x) / self.temperature, dim=-1)  # (B, T, n)
        state = self.state
        key = id(self)
        if state is not None and state.reuse and key in state.cache:
            weights = state.cache[key]  # (S, n)
        else:
            if state is not None and state.um_index is not None:
                h = x.flatten(0, 1)[state.um_index.to(x.device)]  # (k, d)
            else:
                h = x[:, 0]  # (B, d): u_m's own row, or [cls] in the vision tower
            weights = torch.softmax(self.proj(h) / self.temperature, dim=-1)  # (S, n)
            if state is not None and state.record:
                state.cache[key] = weights
        if state is None or state.token_route is None:
            return weights[:, None]  # (B, 1, n)
        return weights[state.token_route.to(x.device)]  # (R, T, n)


def routing_head(
    width: int,
    temperature: float,
    vision_routing: str,
    tower: str,
    state: RoutingState | None,
    n_experts: int = 2,
) -> RoutingHead:
    """The routing head of an adapter in ``tower``.

    The LLM routes per sample from u_m (found through ``state``); the vision tower routes every
    token by itself (``vision_routing: per_token``) or every image by its [cls] token (``cls``).
    """
    if tower == "llm":
        return RoutingHead(width, n_experts, temperature, state)
    return RoutingHead(width, n_experts, temperature, None, per_token=vision_routing == "per_token")


class Adapter(nn.Module):
    """Base of all adapters: x -> x + branch(x), computed in the adapter's own dtype.

    Subclasses implement :meth:`branch` (the residual update, zero at init) and may override
    :meth:`trainable_parameters` (default: all their parameters).
    """

    def branch(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, d) -> (B, T, d)
        """The residual update; must be exactly zero at init."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, d)
        """Return x + branch(x): the branch in the adapter's dtype, the sum in the input's."""
        dtype = next(self.parameters()).dtype
        return x + self.branch(x.to(dtype)).to(x.dtype)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The parameters this adapter declares trainable."""
        return list(self.parameters())


class AdaptedInput(nn.Module):
    """A block's input norm followed by an adapter: how adapters are placed without patching.

    Replaces ``layer.input_layernorm`` (LLM) or ``block.ln_1`` (ViT) so that the adapter sees the
    normalised input of the attention (or MLP) and nothing else of the block changes.
    """

    def __init__(self, norm: nn.Module, adapter: Adapter) -> None:
        super().__init__()
        self.norm = norm
        self.adapter = adapter

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, d)
        """Normalise, then adapt."""
        return self.adapter(self.norm(x))


class AdaptedOutput(AdaptedInput):
    """An adapter on a sub-layer's output, before the block's output scale (open_clip ``ls_1``).

    Replaces ``block.ls_1`` so the block computes x + ls_1(adapter(attn(ln_1 x))): the seed's ALIP
    placement (77cacc3 ``forward_alip``, ``x + ln_attn(adapter(attn(ln_1 x)))`` with ``ln_attn`` an
    identity). It subclasses :class:`AdaptedInput` so code that finds adapters by that type
    (device moves, counts) finds this one too; ``norm`` holds the wrapped ``ls_1``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, d)
        """Adapt, then apply the original output scale."""
        return self.norm(self.adapter(x))
