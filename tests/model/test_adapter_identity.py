"""Every registered adapter is the identity at init, in the LLM and in the vision tower."""

import pytest
import torch
from model_helpers import ALL_ADAPTERS, adapter_id

from ablate.model.adapters import adapter_names
from ablate.model.adapters.base import AdaptedInput
from ablate.model.vision import cls_taps

PLACEMENTS = [
    {"before": ["attn"]},
    {"before": ["attn", "mlp"]},
    {"before": ["mlp"], "vision": False},
    {"before": ["attn"], "llm": False},
]


def test_the_identity_cases_cover_every_registered_adapter():
    assert {cfg["name"] for cfg in ALL_ADAPTERS} == set(adapter_names())


def _outputs(llm, visual, embeds, images, taps):
    with torch.no_grad():
        logits = llm(inputs_embeds=embeds).logits
        return logits, cls_taps(visual, images, taps)


# every adapter before attention (both towers); both sites and one-tower placements for a few
CASES = (
    [(cfg, PLACEMENTS[0]) for cfg in ALL_ADAPTERS]
    + [
        (cfg, PLACEMENTS[1])
        for cfg in ALL_ADAPTERS
        if cfg["name"] in ("bottleneck", "router", "lora_rep")
    ]
    + [(cfg, placement) for cfg in ALL_ADAPTERS[2:4] for placement in PLACEMENTS[2:]]
)


@pytest.mark.parametrize(
    "cfg, placement",
    CASES,
    ids=[f"{adapter_id(c)}@{'+'.join(p['before'])}{len(p)}" for c, p in CASES],
)
def test_adapted_model_equals_base_model_at_init(cfg, placement, base_parts, make_model):
    llm, visual, _ = base_parts
    mm = make_model({**cfg, "placement": placement}).eval()
    torch.manual_seed(0)
    embeds = torch.randn(2, 7, llm.config.hidden_size)
    images = torch.randn(2, 3, 64, 64)
    base = _outputs(llm, visual, embeds, images, mm.taps)
    adapted = _outputs(mm.llm, mm.visual, embeds, images, mm.taps)
    assert torch.equal(base[0], adapted[0])
    assert torch.equal(base[1], adapted[1])

    # the adapters are really in the path: perturbing them changes the adapted tower's output
    wrapped_llm = sum(isinstance(m, AdaptedInput) for m in mm.llm.modules())
    wrapped_vit = sum(isinstance(m, AdaptedInput) for m in mm.visual.modules())
    n_sites = len(placement["before"])
    lora = cfg["name"] == "lora_rep"
    assert wrapped_llm == (0 if lora or placement.get("llm") is False else 4 * n_sites)
    assert wrapped_vit == (0 if placement.get("vision") is False else 12 * n_sites)
    with torch.no_grad():
        for _, p in mm.trainable_named_parameters():
            p.add_(torch.randn_like(p) * 0.05)
    moved = _outputs(mm.llm, mm.visual, embeds, images, mm.taps)
    llm_adapted = placement.get("llm", True)
    vit_adapted = placement.get("vision", True)
    assert llm_adapted == (not torch.allclose(base[0], moved[0]))
    assert vit_adapted == (not torch.allclose(base[1], moved[1]))
