"""Shared fixtures: tiny twins materialised once per session in a temporary folder, offline."""

from __future__ import annotations

import copy
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def twin_dir(tmp_path_factory):
    """Every test builds and loads twins from a fresh session folder (never ~/.cache)."""
    path = tmp_path_factory.mktemp("twins")
    old = os.environ.get("ABLATE_TWIN_DIR")
    os.environ["ABLATE_TWIN_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("ABLATE_TWIN_DIR", None)
    else:
        os.environ["ABLATE_TWIN_DIR"] = old


@pytest.fixture(scope="session")
def tiny_spec():
    from ablate.model.spec import ModelSpec

    return ModelSpec(llm="tiny-llama2", vision="tiny-diht", precision="fp32")


@pytest.fixture(scope="session")
def base_parts(tiny_spec, twin_dir):
    """The frozen twin backbones, loaded once; tests deep-copy them before adapting."""
    from ablate.model.llm import load_llm
    from ablate.model.vision import load_vision_tower

    llm, tokenizer = load_llm(tiny_spec)
    visual = load_vision_tower(tiny_spec)
    return llm, visual, tokenizer


@pytest.fixture
def make_model(tiny_spec, base_parts):
    """Build a MultimodalModel on copies of the session's twin backbones (fast)."""
    from ablate.model.adapters import validate_adapter_config
    from ablate.model.multimodal import MultimodalModel

    def make(adapter: dict, spec=None):
        llm, visual, tokenizer = base_parts
        return MultimodalModel(
            spec or tiny_spec,
            validate_adapter_config(adapter),
            copy.deepcopy(llm),
            copy.deepcopy(visual),
            tokenizer,
        )

    return make


def text_batch(tokenizer, texts, padding_side="right"):
    """Tokenise ``texts`` ([BOS, ...]) with the given padding side; labels on non-pad tokens."""
    tokenizer.padding_side = padding_side
    enc = tokenizer(texts, return_tensors="pt", padding=True)
    tokenizer.padding_side = "right"
    labels = enc.input_ids.clone()
    labels[enc.attention_mask == 0] = -100
    return enc.input_ids, enc.attention_mask, labels


ALL_ADAPTERS = [
    {"name": "bottleneck"},
    {"name": "bottleneck", "grouped": "up", "dim": 8, "groups": 4},
    {"name": "router"},
    {"name": "concat_router", "routed": True},
    {"name": "concat_router", "routed": False},
    {"name": "loha", "variant": 1},
    {"name": "loha", "variant": 2},
    {"name": "loha", "variant": 3},
    {"name": "lora_rep"},
    {"name": "bottleneck_scaled"},
]


def adapter_id(cfg: dict) -> str:
    return "-".join(str(v) for v in cfg.values())
