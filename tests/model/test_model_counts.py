"""Trainable-parameter counts at real shapes, on the meta device (no weights, no allocation)."""

import pytest

from ablate.model.sizing import (
    count_trainable_parameters,
    describe_model,
    estimate_gpu_memory_gib,
)
from ablate.model.spec import ModelSpec

LAVIN = ModelSpec(llm="llama2-7b", vision="diht-vit-l14-336", neck={"dim": 128, "act": "silu"})
D_LLM, N_LLM, D_VIT, N_VIT = 4096, 32, 1024, 24
NECK = D_VIT * 128 + 128 + 128 * D_LLM + D_LLM  # 659,584
U_M = 2 * D_LLM


def ba_params(d: int, dim: int, groups: int, grouped: str = "both") -> int:
    """Paper eq. 1-2 with 1x1 (grouped) convs: down d->dim, up dim->d, with biases."""
    down_groups = groups if grouped == "both" else 1
    return d * dim // down_groups + dim + dim * d // groups + d


def router_params(d: int, dim: int, groups: int) -> int:
    """LaVIN RepAdapter_Router: dense A, grouped B and D, expert weights Linear(d, 2)."""
    return d * dim + dim + 2 * (dim * d // groups + d) + 2 * d + 2


def test_lavin_router_dim8_reference_count():
    assert count_trainable_parameters(LAVIN, {"name": "router", "dim": 8}) == 3_781_296


def test_bottleneck_dim16_groups2_reference_count():
    n = count_trainable_parameters(LAVIN, {"name": "bottleneck", "dim": 16, "groups": 2})
    assert n == 3_314_688
    assert n == 32 * (17 * D_LLM + 16) + 24 * 17_424 + 659_584 + 8_192


@pytest.mark.parametrize("dim, groups", [(8, 2), (16, 2), (4, 2), (32, 2), (16, 4)])
def test_table2_rows_follow_the_formula(dim, groups):
    expected = (
        N_LLM * ba_params(D_LLM, dim, groups) + N_VIT * ba_params(D_VIT, dim, groups) + NECK + U_M
    )
    cfg = {"name": "bottleneck", "dim": dim, "groups": groups}
    assert count_trainable_parameters(LAVIN, cfg) == expected


def test_placement_before_attn_and_mlp_doubles_adapters_and_towers_switch():
    both = {"name": "bottleneck", "placement": {"before": ["attn", "mlp"]}}
    expected = 2 * (N_LLM * ba_params(D_LLM, 16, 2) + N_VIT * ba_params(D_VIT, 16, 2))
    assert count_trainable_parameters(LAVIN, both) == expected + NECK + U_M
    llm_only = {"name": "bottleneck", "placement": {"vision": False}}
    assert count_trainable_parameters(LAVIN, llm_only) == (
        N_LLM * ba_params(D_LLM, 16, 2) + NECK + U_M
    )
    grouped_up = {"name": "bottleneck", "grouped": "up"}
    assert count_trainable_parameters(LAVIN, grouped_up) == (
        N_LLM * ba_params(D_LLM, 16, 2, "up") + N_VIT * ba_params(D_VIT, 16, 2, "up") + NECK + U_M
    )


def test_widths_come_from_the_towers():
    # ALIP ViT-B/32: width 768, 12 blocks; LLaMA-2-13B: width 5120, 40 blocks
    spec = ModelSpec(llm="llama2-13b", vision="alip-vit-b32")
    neck = 768 * 128 + 128 + 128 * 5120 + 5120
    expected = 40 * router_params(5120, 8, 2) + 12 * router_params(768, 8, 2) + neck + 2 * 5120
    assert count_trainable_parameters(spec, {"name": "router", "temperature": 5.0}) == expected


def test_swiglu_neck_doubles_its_first_projection():
    spec = ModelSpec(neck={"act": "swiglu"})
    silu = count_trainable_parameters(LAVIN, {"name": "bottleneck"})
    assert count_trainable_parameters(spec, {"name": "bottleneck"}) == silu + D_VIT * 128 + 128


def test_every_adapter_counts_at_real_shape():
    counts = {
        cfg["name"] + str(cfg.get("variant", "")): count_trainable_parameters(LAVIN, cfg)
        for cfg in [
            {"name": "concat_router"},
            {"name": "loha", "variant": 1, "rank": 4, "form": "hadamard"},
            {"name": "loha", "variant": 3, "rank": 4, "dim": 8, "form": "hadamard"},
            {
                "name": "lora_rep",
                "lora_rank": 8,
                "target_modules": ["q_proj", "v_proj"],
                "vision_adapter": "plain",
            },
            {"name": "bottleneck_scaled"},
        ]
    }
    # LoHa conv d->d of rank r: 4 d r + d bias; variant 1 holds two plus the routing head
    assert counts["loha1"] == (
        N_LLM * (2 * (4 * D_LLM * 4 + D_LLM) + 2 * D_LLM + 2)
        + N_VIT * (2 * (4 * D_VIT * 4 + D_VIT) + 2 * D_VIT + 2)
        + NECK
        + U_M
    )
    # LoRA r=8 on q_proj and v_proj (4096x4096): 2 * 8 * (4096 + 4096) per layer
    rep = D_VIT * 8 + 8 + 8 * D_VIT // 2 + D_VIT
    assert counts["lora_rep"] == N_LLM * 2 * 8 * 2 * D_LLM + N_VIT * rep + NECK + U_M
    # BA with weight factors: grouped down, two grouped ups, routing head
    scaled = lambda d: d * 16 // 2 + 16 + 2 * (16 * d // 2 + d) + 2 * d + 2  # noqa: E731
    assert counts["bottleneck_scaled"] == N_LLM * scaled(D_LLM) + N_VIT * scaled(D_VIT) + NECK + U_M
    assert counts["concat_router"] > 0 and counts["loha3"] > 0


def test_memory_estimate_is_plausible_against_the_anchors():
    ba = {"name": "bottleneck", "placement": {"before": ["attn", "mlp"]}}
    bf16 = estimate_gpu_memory_gib(LAVIN, ba, batch_size=16, seq_len=512)
    assert 40 < bf16 < 65  # DESIGN.md section 8: 52 GiB measured
    nf4 = ModelSpec(quantization="nf4")
    assert 3 < estimate_gpu_memory_gib(nf4, ba, batch_size=1, seq_len=512) < 10  # 6.2 GiB
    assert 15 < estimate_gpu_memory_gib(nf4, ba, batch_size=8, seq_len=512) < 30  # 23 GiB
    assert estimate_gpu_memory_gib(LAVIN, ba, 1, 512) < estimate_gpu_memory_gib(LAVIN, ba, 2, 512)


def test_describe_model_gives_plan_columns():
    row = describe_model(LAVIN, {"name": "router", "dim": 8})
    assert row["trainable_params"] == 3_781_296
    assert row["gpu_memory_gib"] > 13  # bf16 7B weights alone are 12.6 GiB
