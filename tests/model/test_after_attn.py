"""``placement.vision: after_attn``: the seed's ALIP placement (77cacc3 ``forward_alip``).

The seed computes ``x + ln_attn(adapter(attn(ln_1 x)))`` with ``ln_attn`` an identity, then the MLP
unchanged; we wrap open_clip's ``ls_1`` instead of replacing the block's forward.
"""

from __future__ import annotations

import pytest
import torch
from open_clip.transformer import VisionTransformer

from ablate.model.adapters import PlacementSpec, validate_adapter_config
from ablate.model.adapters.base import AdaptedInput, AdaptedOutput, RoutingState
from ablate.model.placement import place_adapters


def tiny_tower() -> VisionTransformer:
    torch.manual_seed(0)
    return VisionTransformer(
        image_size=16, patch_size=8, width=16, layers=2, heads=2, mlp_ratio=2.0, output_dim=8
    ).eval()


@pytest.mark.parametrize("value", [True, False, "after_attn"])
def test_vision_placement_accepts_the_three_values(value):
    assert PlacementSpec(vision=value).vision == value


@pytest.mark.parametrize("value", ["yes", 1, "before_attn", None])
def test_vision_placement_rejects_anything_else_listing_the_allowed_values(value):
    with pytest.raises(ValueError, match="true, false, after_attn"):
        PlacementSpec(vision=value)


def test_after_attn_needs_the_attn_site():
    with pytest.raises(ValueError, match="add attn to before"):
        PlacementSpec(vision="after_attn", before=["mlp"])


def test_after_attn_wraps_ls_1_and_leaves_ln_1():
    visual = tiny_tower()
    cfg = validate_adapter_config(
        {
            "name": "router",
            "placement": {"llm": False, "vision": "after_attn", "before": ["attn", "mlp"]},
        }
    )
    place_adapters(None, visual, cfg, RoutingState())
    for block in visual.transformer.resblocks:
        assert isinstance(block.ls_1, AdaptedOutput) and isinstance(
            block.ls_1.norm, torch.nn.Identity
        )
        assert not isinstance(block.ln_1, AdaptedInput)
        assert (
            type(block.ln_2) is AdaptedInput
        )  # the mlp site stays before the MLP (forward_alip_full)


def test_adapted_block_is_x_plus_adapter_of_attention_output_plus_mlp():
    visual = tiny_tower()
    cfg = validate_adapter_config(
        {"name": "router", "placement": {"llm": False, "vision": "after_attn"}}
    )
    place_adapters(None, visual, cfg, RoutingState())
    block = visual.transformer.resblocks[0].eval()  # new adapters come in train mode (dropout)
    adapter = block.ls_1.adapter
    with torch.no_grad():
        for p in adapter.parameters():
            p.normal_(0, 0.3)
    x = torch.randn(2, 5, 16)  # (B, T, d), open_clip blocks are batch-first
    with torch.no_grad():
        h = block.ln_1(x)
        a = block.attn(h, h, h, need_weights=False)[0]  # attn(ln_1 x)
        # the router by hand (eval: no dropout), per-token weights
        w = torch.softmax((a @ adapter.router.proj.weight.T + adapter.router.proj.bias) / 10.0, -1)
        down = a @ adapter.conv_A.weight[..., 0].T + adapter.conv_A.bias  # (B, T, 8)

        def grouped_up(conv: torch.nn.Conv1d) -> torch.Tensor:  # groups 2: 4 -> 8 per group
            halves = [
                down[..., 4 * g : 4 * g + 4] @ conv.weight[8 * g : 8 * g + 8, :, 0].T
                for g in (0, 1)
            ]
            return torch.cat(halves, -1) + conv.bias

        adapted = (
            a + w[..., :1] * grouped_up(adapter.conv_B) + w[..., 1:] * grouped_up(adapter.conv_D)
        )
        y = x + adapted
        expected = y + block.mlp(block.ln_2(y))
        torch.testing.assert_close(block(x), expected)
        assert not torch.allclose(adapted, a)  # the hand-set adapter is not the identity
