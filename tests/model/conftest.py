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
