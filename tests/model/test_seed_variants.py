"""The adapters against the seed code (anshkumar/LaVIN_2), rewritten here from its history.

Each reference below is the seed's code, copied from the commit it names with only the CUDA
autocast removed, so the comparison is against what ran, not against our reading of it.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ablate.model.adapters import validate_adapter_config
from ablate.model.adapters.base import RoutingState
from ablate.model.adapters.loha.layers import FedParaConv1x1, FedParaLowRank
from ablate.model.adapters.registry import get_method

D = 16


def build(cfg: dict, tower: str = "vision", width: int = D) -> nn.Module:
    """One block adapter of ``cfg`` at ``width`` (LLM routers get a fresh RoutingState)."""
    config = validate_adapter_config(cfg)
    state = RoutingState() if tower == "llm" else None
    return get_method(config).block_adapter(config, width, tower, state)


# ------------------------------------------------------------------ seed references
def seed_loha_weight(T1, O1, I1, T2, O2, I2) -> torch.Tensor:  # (out, in, k)
    """948411c util/loha.py: ``Conv1d.forward`` builds W = W1() * W2(), ``LowRank.forward``."""
    w1 = torch.einsum("xyz,xo,yi->oiz", T1, O1, I1)
    w2 = torch.einsum("xyz,xo,yi->oiz", T2, O2, I2)
    return w1 * w2


class SeedRepAdapterRouter(nn.Module):
    """LaVIN's RepAdapter_Router as in the seed (2a04fd0 lavin/mm_adapter.py), sequence-first."""

    def __init__(self, in_features: int, hidden_dim: int = 8, groups: int = 2, t: float = 10.0):
        super().__init__()
        self.conv_A = nn.Conv1d(in_features, hidden_dim, 1, groups=1, bias=True)
        self.conv_B = nn.Conv1d(hidden_dim, in_features, 1, groups=groups, bias=True)
        self.conv_D = nn.Conv1d(hidden_dim, in_features, 1, groups=groups, bias=True)
        self.expert_weights = nn.Linear(in_features, 2)
        self.dropout = nn.Dropout(0.1)
        self.scale = 1
        self.t = t

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (L, N, D): LaVIN's ViT is LND
        weights = torch.softmax(self.expert_weights(x[:, 0]) / self.t, -1)
        x = x.transpose(1, 2)
        x_ = self.dropout(self.conv_A(x))
        x = (
            self.conv_B(x_) * self.scale * weights[:, 0, None, None]
            + self.conv_D(x_) * self.scale * weights[:, 1, None, None]
            + x
        )
        return x.transpose(1, 2).contiguous()


class SeedBottleneck(nn.Module):
    """The seed's final adapter (808e124 lavin/mm_adapter.py, class named RepAdapter_Router)."""

    def __init__(self, in_features: int, hidden_dim: int = 8):
        super().__init__()
        self.conv_A = nn.Conv1d(in_features, hidden_dim, 1, groups=2, bias=True)
        self.conv_B = nn.Conv1d(hidden_dim, in_features, 1, groups=2, bias=True)
        nn.init.xavier_uniform_(self.conv_A.weight)
        nn.init.zeros_(self.conv_A.bias)
        nn.init.zeros_(self.conv_B.weight)
        nn.init.zeros_(self.conv_B.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, L, D) after its batch_transpose
        x = x.transpose(1, 2)
        x = self.conv_B(self.conv_A(x)) + x
        return x.transpose(1, 2).contiguous()


def copy_random_(dst: nn.Module, src: nn.Module, names: dict[str, str]) -> None:
    """Fill ``src``'s parameters randomly and copy them into ``dst`` (``names``: dst -> src)."""
    with torch.no_grad():
        for p in src.parameters():
            p.normal_(0, 0.3)
        for d_name, s_name in names.items():
            dst.get_parameter(d_name).copy_(src.get_parameter(s_name))


ROUTER_NAMES = {
    f"{a}.{w}": f"{b}.{w}"
    for a, b in [
        ("conv_A", "conv_A"),
        ("conv_B", "conv_B"),
        ("conv_D", "conv_D"),
        ("router.proj", "expert_weights"),
    ]
    for w in ("weight", "bias")
}


# ------------------------------------------------------------------ B: LoHa (rows 7-9)
def test_loha_defaults_are_the_seeds_file_at_the_time_of_the_runs():
    cfg = validate_adapter_config({"name": "loha"})
    assert (cfg.form, cfg.rank, cfg.init) == ("fedpara", 1, "normal")
    conv = FedParaConv1x1(12, 6, rank=1, init="normal")
    shapes = {n: tuple(p.shape) for n, p in conv.named_parameters()}
    assert shapes == {
        "W1.T": (1, 1, 1),
        "W1.O": (1, 6),
        "W1.I": (1, 12),
        "W2.T": (1, 1, 1),
        "W2.O": (1, 6),
        "W2.I": (1, 12),
    }  # no bias: the seed's Conv1d defaults to bias=False


@pytest.mark.parametrize("rank", [1, 3])
def test_fedpara_operator_matches_the_seed_einsum(rank):
    torch.manual_seed(0)
    conv = FedParaConv1x1(12, 6, rank=rank, init="normal")
    with torch.no_grad():
        for p in conv.parameters():
            p.normal_()
    x = torch.randn(2, 5, 12)  # (B, T, in)
    w = seed_loha_weight(conv.W1.T, conv.W1.O, conv.W1.I, conv.W2.T, conv.W2.O, conv.W2.I)
    expected = F.conv1d(x.transpose(1, 2), w).transpose(1, 2)  # the seed's F.conv1d, kernel 1
    torch.testing.assert_close(conv(x), expected)


@pytest.mark.parametrize("variant", [1, 2, 3])
@pytest.mark.parametrize("tower", ["vision", "llm"])
def test_fedpara_zeros_gets_exactly_zero_gradient_and_never_trains(variant, tower):
    torch.manual_seed(0)
    cfg = {"name": "loha", "variant": variant, "form": "fedpara", "init": "zeros"}
    adapter = build(cfg, tower).train()
    params = dict(adapter.named_parameters())
    assert any(".T" in n for n in params)
    opt = torch.optim.AdamW(adapter.parameters(), lr=1e-2)
    for _ in range(3):
        x = torch.randn(2, 5, D)
        (adapter(x) * torch.randn_like(x)).sum().backward()
        for n, p in params.items():
            if "router" not in n:  # every LoHa factor
                assert p.grad is not None and torch.count_nonzero(p.grad) == 0, n
        opt.step()
        opt.zero_grad()
    assert all(torch.count_nonzero(p) == 0 for n, p in params.items() if "router" not in n)


@pytest.mark.parametrize("variant", [1, 2, 3])
def test_hadamard_form_gets_gradients(variant):
    torch.manual_seed(0)
    adapter = build({"name": "loha", "variant": variant, "form": "hadamard"})
    x = torch.randn(2, 5, D)
    (adapter(x) * torch.randn_like(x)).sum().backward()
    grads = {n: p.grad for n, p in adapter.named_parameters() if "router" not in n}
    assert any(g is not None and torch.count_nonzero(g) > 0 for g in grads.values())


@pytest.mark.parametrize("variant", [1, 2, 3])
def test_fedpara_normal_is_not_the_identity_at_init(variant):
    # the one exemption of the identity rule (tests/model/test_adapter_identity.py)
    torch.manual_seed(0)
    adapter = build({"name": "loha", "variant": variant}).eval()
    x = torch.randn(2, 5, D)
    with torch.no_grad():
        assert not torch.equal(adapter(x), x)
        assert adapter.branch(x).abs().max() > 0


def test_fedpara_normal_std_per_tensor_is_the_seeds_kaiming_normal():
    torch.manual_seed(0)
    rank, n_in, n_out = 32, 512, 256
    factor = FedParaLowRank(n_in, n_out, rank, init="normal")
    gain = nn.init.calculate_gain("relu", 0)
    for name, p in factor.named_parameters():
        # 948411c: std = gain / sqrt(fan_in), fan_in as torch computes it
        expected = gain / math.sqrt(nn.init._calculate_correct_fan(p, mode="fan_in"))
        assert abs(p.std().item() / expected - 1) < 0.1, name
        assert abs(p.mean().item()) < 0.2 * expected, name
    assert nn.init._calculate_correct_fan(factor.T, mode="fan_in") == rank  # (r, r, k=1)
    assert nn.init._calculate_correct_fan(factor.O, mode="fan_in") == n_out


# ------------------------------------------------------------------ D: vision routing
def test_per_token_weights_at_batch_one_are_each_tokens_own_softmax():
    torch.manual_seed(0)
    adapter = build({"name": "router"}).eval()
    x = torch.randn(1, 5, D)
    w = adapter.router(x)
    assert w.shape == (1, 5, 2)
    proj = adapter.router.proj
    for t in range(5):
        expected = torch.softmax((proj.weight @ x[0, t] + proj.bias) / 10.0, dim=-1)
        torch.testing.assert_close(w[0, t], expected)


@pytest.mark.parametrize(
    "cfg",
    [
        {"name": "router"},
        {"name": "concat_router"},
        {"name": "loha", "variant": 1},
        {"name": "loha", "variant": 2},
        {"name": "lora_rep"},
        {"name": "bottleneck_scaled"},
    ],
    ids=lambda c: "-".join(map(str, c.values())),
)
def test_every_vision_router_routes_per_token_by_default(cfg):
    adapter = build(cfg)
    assert adapter.router.per_token
    assert not build({**cfg, "vision_routing": "cls"}).router.per_token
    assert not build(cfg, tower="llm").router.per_token  # the LLM routes per sample on u_m


def test_router_matches_lavins_router_and_batch_is_batch_one_image_by_image():
    """F and D: ours (batch-first) equals LaVIN's RepAdapter_Router on its sequence-first ViT at
    batch 1; a two-image batch equals that reference applied to each image alone."""
    torch.manual_seed(0)
    ours = build({"name": "router"}).eval()
    seed = SeedRepAdapterRouter(D).eval()
    copy_random_(ours, seed, ROUTER_NAMES)
    x = torch.randn(2, 5, D)  # (B, T, D)
    with torch.no_grad():
        ref = torch.cat([seed(x[i : i + 1].transpose(0, 1)).transpose(0, 1) for i in range(2)])
        torch.testing.assert_close(ours(x), ref)
        # the seed at batch 2 would route image 1 by image 0's tokens: per_token differs from it
        seed_batch2 = seed(x.transpose(0, 1)).transpose(0, 1)
        assert not torch.allclose(ours(x)[1], seed_batch2[1])


def test_cls_routing_gives_one_weight_pair_per_image():
    torch.manual_seed(0)
    adapter = build({"name": "router", "vision_routing": "cls"})
    x = torch.randn(2, 5, D)
    w = adapter.router(x)
    assert w.shape == (2, 1, 2)
    p = adapter.router.proj
    torch.testing.assert_close(w[:, 0], torch.softmax(p(x[:, 0]) / 10.0, dim=-1))


# ------------------------------------------------------------------ F: router and BA structure
def test_router_structure_is_lavins():
    ours = build({"name": "router"})
    assert (ours.conv_A.groups, ours.conv_B.groups, ours.conv_D.groups) == (1, 2, 2)
    assert ours.dropout.p == 0.1 and ours.router.temperature == 10.0
    for conv in (ours.conv_B, ours.conv_D):
        assert torch.count_nonzero(conv.weight) == 0 and torch.count_nonzero(conv.bias) == 0
    assert torch.count_nonzero(ours.conv_A.bias) == 0
    assert_xavier_uniform(ours.conv_A.weight)


def assert_xavier_uniform(w: torch.Tensor) -> None:
    fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(w)
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    assert w.abs().max() <= bound
    assert abs(w.std().item() / (bound / math.sqrt(3)) - 1) < 0.2


def test_bottleneck_matches_the_seeds_final_adapter():
    torch.manual_seed(0)
    d, dim = 64, 8
    ours = build({"name": "bottleneck", "dim": dim, "groups": 2}, width=d)
    seed = SeedBottleneck(d, dim)
    assert (ours.down.groups, ours.up.groups) == (seed.conv_A.groups, seed.conv_B.groups) == (2, 2)
    assert ours.down.weight.shape == seed.conv_A.weight.shape
    assert ours.up.weight.shape == seed.conv_B.weight.shape
    assert torch.count_nonzero(ours.down.bias) == 0
    assert torch.count_nonzero(ours.up.weight) == torch.count_nonzero(ours.up.bias) == 0
    assert_xavier_uniform(ours.down.weight)
    names = {
        f"{a}.{w}": f"{b}.{w}"
        for a, b in [("down", "conv_A"), ("up", "conv_B")]
        for w in ("weight", "bias")
    }
    copy_random_(ours, seed, names)
    x = torch.randn(2, 5, d)
    with torch.no_grad():  # no activation, scale or dropout: the same function
        torch.testing.assert_close(ours.train()(x), seed(x))


# ------------------------------------------------------------------ E: compute dtype
def test_branch_runs_in_the_autocast_dtype_with_fp32_master_weights():
    torch.manual_seed(0)
    adapter = build({"name": "router"})
    assert all(p.dtype == torch.float32 for p in adapter.parameters())
    x = torch.randn(2, 5, D)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert adapter.branch(x).dtype == torch.bfloat16  # as the seed's autocast (fp16)
        assert adapter(x).dtype == torch.float32  # the sum stays in the input's dtype
    assert adapter.branch(x).dtype == torch.float32  # without autocast: the parameters' dtype
    assert adapter(x.bfloat16()).dtype == torch.bfloat16
