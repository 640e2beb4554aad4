"""Every registered adapter is the identity at init, in the LLM and in the vision tower.

One explicit exemption: loha's default ``form: fedpara, init: normal`` is the seed's random init
(948411c util/loha.py), not the identity; tests/model/test_seed_variants.py pins that. loha is
covered here by its identity forms, ``hadamard`` and ``fedpara`` + ``init: zeros``.
"""

import pytest
import torch
from model_helpers import ALL_ADAPTERS, adapter_id

from ablate.model.adapters import adapter_names, validate_adapter_config
from ablate.model.adapters.base import AdaptedInput
from ablate.model.vision import cls_taps

PLACEMENTS = [
    {"before": ["attn"]},
    {"before": ["attn", "mlp"]},
    {"before": ["mlp"], "vision": False},
    {"before": ["attn"], "llm": False},
]


NOT_IDENTITY_AT_INIT = {"name": "loha", "form": "fedpara", "init": "normal"}
"""The only exempt config: the reference's own non-identity init."""


def _identity_forms(cfg: dict) -> list[dict]:
    """loha's cases in its identity forms (its default is the exemption); others as they are."""
    if cfg["name"] != "loha":
        return [cfg]
    return [{**cfg, "form": "hadamard"}, {**cfg, "form": "fedpara", "init": "zeros"}]


IDENTITY_ADAPTERS = [form for cfg in ALL_ADAPTERS for form in _identity_forms(cfg)] + [
    {"name": "router", "vision_routing": "cls"},
    {"name": "lora_rep", "vision_adapter": "plain", "target_modules": ["q_proj", "v_proj"]},
]


def test_the_identity_cases_cover_every_registered_adapter():
    assert {cfg["name"] for cfg in IDENTITY_ADAPTERS} == set(adapter_names())


def test_the_exemption_is_exactly_lohas_default_and_nothing_else():
    loha = validate_adapter_config({"name": "loha"})
    assert (loha.form, loha.init) == ("fedpara", "normal")
    exempt = [
        c
        for c in IDENTITY_ADAPTERS
        if all(
            validate_adapter_config(c).model_dump().get(k) == v
            for k, v in NOT_IDENTITY_AT_INIT.items()
        )
    ]
    assert exempt == []


def _outputs(llm, visual, embeds, images, taps):
    with torch.no_grad():
        logits = llm(inputs_embeds=embeds).logits
        return logits, cls_taps(visual, images, taps)


# every adapter before attention (both towers); both sites and one-tower placements for a few
ROUTED = [{"name": "router"}, {"name": "concat_router", "routed": True}]
AFTER_ATTN = [
    {"before": ["attn"], "vision": "after_attn"},
    {"before": ["attn", "mlp"], "vision": "after_attn"},
]
CASES = (
    [(cfg, PLACEMENTS[0]) for cfg in IDENTITY_ADAPTERS]
    + [
        (cfg, PLACEMENTS[1])
        for cfg in ALL_ADAPTERS
        if cfg["name"] in ("bottleneck", "router", "lora_rep")
    ]
    + [(cfg, placement) for cfg in ROUTED for placement in PLACEMENTS[2:]]
    + [(cfg, placement) for cfg in ({"name": "bottleneck"}, ROUTED[0]) for placement in AFTER_ATTN]
)


@pytest.mark.parametrize(
    "cfg, placement",
    CASES,
    ids=[f"{adapter_id(c)}@{'+'.join(p['before'])}{len(p)}{p.get('vision', '')}" for c, p in CASES],
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
    # fedpara's weight is a product of six factors: a 0.05 nudge would move it by ~1e-8
    nudge = 0.5 if cfg.get("form") == "fedpara" else 0.05
    with torch.no_grad():
        for _, p in mm.trainable_named_parameters():
            p.add_(torch.randn_like(p) * nudge)
    moved = _outputs(mm.llm, mm.visual, embeds, images, mm.taps)
    llm_adapted = placement.get("llm", True)
    vit_adapted = placement.get("vision", True) is not False
    assert llm_adapted == (not torch.allclose(base[0], moved[0]))
    assert vit_adapted == (not torch.allclose(base[1], moved[1]))
