"""``lora_rep`` (Table 3 row 10) at its defaults is the seed's run (2a04fd0 ``lavin/model.py``).

The seed adds ``nn.Linear(dim, 2, bias=False)`` then a zero-init ``nn.Linear(2, out, bias=False)``
beside wq, wk, wv, wo, w1, w3 and w2 (``xq + l2(l1(x))``: no scaling, no dropout), puts LaVIN's
routed RepAdapter before attention in every ViT block, and no other adapter in the LLM.
"""

from __future__ import annotations

import math

import torch

from ablate.model.adapters import validate_adapter_config
from ablate.model.adapters.base import AdaptedInput
from ablate.model.adapters.router.layers import RouterAdapter
from ablate.model.sizing import count_trainable_parameters
from ablate.model.spec import ModelSpec

SEVEN = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def test_defaults_are_the_seeds():
    cfg = validate_adapter_config({"name": "lora_rep"})
    assert (cfg.lora_rank, cfg.lora_alpha / cfg.lora_rank, cfg.lora_dropout) == (2, 1.0, 0.0)
    assert cfg.target_modules == SEVEN
    assert (cfg.vision_adapter, cfg.vision_routing, cfg.temperature) == (
        "router",
        "per_token",
        10.0,
    )
    assert (cfg.dim, cfg.groups, cfg.dropout) == (8, 2, 0.1)


def test_tiny_twin_gets_the_seeds_lora_and_routed_vision_adapter(make_model):
    from peft.tuners.lora import LoraLayer

    mm = make_model({"name": "lora_rep"})
    assert not any(isinstance(m, AdaptedInput) for m in mm.llm.modules())
    for layer in mm.llm.model.layers:
        for name in SEVEN:
            proj = layer.self_attn if name in SEVEN[:4] else layer.mlp
            lora = getattr(proj, name)
            assert isinstance(lora, LoraLayer)
            a, b = lora.lora_A["default"], lora.lora_B["default"]
            assert lora.r["default"] == 2 and lora.scaling["default"] == 1.0
            assert isinstance(lora.lora_dropout["default"], torch.nn.Identity)
            assert a.bias is None and b.bias is None
            assert torch.count_nonzero(b.weight) == 0
            # nn.Linear's default init, as the seed's l1: kaiming-uniform, a = sqrt(5)
            assert a.weight.abs().max() <= 1 / math.sqrt(a.in_features)
    for block in mm.visual.transformer.resblocks:
        assert isinstance(block.ln_1, AdaptedInput)
        assert isinstance(block.ln_1.adapter, RouterAdapter)
        assert block.ln_1.adapter.router.per_token


def test_a_lora_projection_computes_the_seeds_sum(make_model):
    torch.manual_seed(0)
    mm = make_model({"name": "lora_rep"})
    lora = mm.llm.model.layers[0].mlp.down_proj
    a, b = lora.lora_A["default"], lora.lora_B["default"]
    with torch.no_grad():
        b.weight.normal_()
        x = torch.randn(2, 3, a.in_features)
        seed = lora.base_layer(x) + (x @ a.weight.T) @ b.weight.T  # w2(out) + l2(l1(out))
        torch.testing.assert_close(lora(x), seed)


def test_count_at_real_shape():
    lavin = ModelSpec(llm="llama2-7b", vision="diht-vit-l14-336", neck={"dim": 128, "act": "silu"})
    d, ffn, d_vit = 4096, 11008, 1024
    lora = 4 * 2 * (d + d) + 3 * 2 * (d + ffn)  # q, k, v, o; gate, up, down
    router = d_vit * 8 + 8 + 2 * (8 * d_vit // 2 + d_vit) + 2 * d_vit + 2
    neck = d_vit * 128 + 128 + 128 * d + d
    expected = 32 * lora + 24 * router + neck + 2 * d
    assert expected == 6_156_656
    assert count_trainable_parameters(lavin, {"name": "lora_rep"}) == expected
