import subprocess
import sys

import pytest

from ablate.model.adapters import (
    BottleneckConfig,
    PlacementSpec,
    adapter_names,
    validate_adapter_config,
)
from ablate.model.spec import ModelSpec, is_twin, twin_of


def test_twin_of_maps_real_presets_and_twins():
    assert twin_of("llama2-7b") == "tiny-llama2"
    assert twin_of("llama-7b") == "tiny-llama"
    assert twin_of("diht-vit-l14-336") == "tiny-diht"
    assert twin_of("alip-vit-b32") == "tiny-alip"
    assert twin_of("tiny-clip") == "tiny-clip"
    assert is_twin("tiny-llama") and not is_twin("llama2-13b")


def test_unknown_preset_lists_allowed():
    with pytest.raises(ValueError, match="llama2-7b"):
        twin_of("gpt-2")
    with pytest.raises(ValueError, match="diht-vit-l14-336"):
        ModelSpec(vision="vit-h")


def test_model_spec_defaults_and_paths_are_nonsemantic():
    from ablate.spec.base import is_nonsemantic

    spec = ModelSpec()
    assert (spec.llm, spec.vision, spec.precision, spec.neck.dim) == (
        "llama2-7b",
        "diht-vit-l14-336",
        "bf16",
        128,
    )
    assert is_nonsemantic(ModelSpec, "llm_path") and is_nonsemantic(ModelSpec, "vision_path")
    assert not is_nonsemantic(ModelSpec, "llm")
    with pytest.raises(ValueError):
        ModelSpec(tap_every=0)
    with pytest.raises(ValueError):
        ModelSpec(lmm="llama2-7b")  # typo: extra keys are forbidden


def test_adapter_registry_names_and_dispatch():
    assert adapter_names() == [  # sorted: one package per method, found by listing them
        "bottleneck",
        "bottleneck_scaled",
        "concat_router",
        "loha",
        "lora_rep",
        "router",
    ]
    cfg = validate_adapter_config({"name": "bottleneck", "dim": 8, "groups": 4})
    assert isinstance(cfg, BottleneckConfig) and (cfg.dim, cfg.groups) == (8, 4)
    assert cfg.placement == PlacementSpec(llm=True, vision=True, before=("attn",))


@pytest.mark.parametrize(
    "data, match",
    [
        ({"name": "prefix"}, "allowed: bottleneck, bottleneck_scaled, concat_router"),
        ({"dim": 8}, "needs a 'name'"),
        ({"name": "bottleneck", "dims": 8}, "dims"),
        ({"name": "loha", "variant": 4}, "variant"),
        ({"name": "router", "placement": {"before": []}}, "at least one"),
        ({"name": "router", "placement": {"before": ["ffn"]}}, "before"),
    ],
)
def test_bad_adapter_configs_name_the_problem(data, match):
    with pytest.raises(ValueError, match=match):
        validate_adapter_config(data)


def test_config_modules_do_not_import_torch():
    code = (
        "import sys; import ablate.model.spec, ablate.model.adapters; "
        "from ablate.model.adapters import validate_adapter_config as v; v({'name': 'router'}); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
