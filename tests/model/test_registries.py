"""Registries: each kind declared once, duplicate names refused, unknown names listed.

Adapters (one package per method), job kinds and the backbone preset tables.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from ablate.jobs.linear_fit import LinearFitConfig
from ablate.model.adapters import BottleneckConfig, adapter_names, validate_adapter_config
from ablate.model.adapters.registry import AdapterMethod, get_method, register_method
from ablate.model.presets import LLM_PRESETS, VISION_PRESETS, llm_preset, twin_of, vision_preset
from ablate.spec.job_kinds import JobKind, get_job, job_names, register_job


def test_every_adapter_package_registers_its_config_citation_and_layers():
    names = adapter_names()
    assert names == sorted(names)
    assert {
        "bottleneck",
        "router",
        "concat_router",
        "loha",
        "lora_rep",
        "bottleneck_scaled",
    } <= set(names)
    for name in names:
        method = get_method(name)
        assert method.name == name and method.citation
        assert method.config_cls.model_fields["name"].default == name
        assert method.layers == f"ablate.model.adapters.{name}.layers"
        assert validate_adapter_config({"name": name}).name == name


def test_a_taken_adapter_name_is_refused():
    with pytest.raises(ValueError, match="'bottleneck' is already registered"):
        register_method(AdapterMethod("bottleneck", BottleneckConfig, "x", "elsewhere.layers"))
    same = get_method("bottleneck")
    assert register_method(same) is same  # its package imported again: the same method


def test_an_adapter_whose_config_names_another_method_is_refused():
    with pytest.raises(ValueError, match="its config's name defaults to 'bottleneck'"):
        register_method(AdapterMethod("bottleneck2", BottleneckConfig, "x", "m.layers"))


def test_unknown_adapter_lists_the_allowed_names():
    with pytest.raises(ValueError, match="unknown adapter 'prefix'; allowed: bottleneck, "):
        get_method("prefix")
    with pytest.raises(ValueError, match="unknown adapter"):
        validate_adapter_config({"name": ["router"]})


def test_a_taken_job_name_is_refused_and_unknown_jobs_are_listed():
    with pytest.raises(ValueError, match="'linear-fit' is already registered"):
        register_job(JobKind("linear-fit", LinearFitConfig, "elsewhere:run"))
    kind = get_job("linear-fit")
    assert register_job(kind) is kind
    with pytest.raises(KeyError, match="unknown job 'nope'; allowed: linear-fit, mmt"):
        get_job("nope")
    assert {"linear-fit", "mmt"} <= set(job_names())


def test_presets_are_one_table_each_with_their_twins_and_widths():
    for preset in LLM_PRESETS.values():
        assert preset.width == preset.config["hidden_size"]
        assert LLM_PRESETS[twin_of(preset.name)].twin
    for preset in VISION_PRESETS.values():
        assert VISION_PRESETS[twin_of(preset.name)].twin
        if preset.twin:
            assert preset.width == preset.twin_config["vision_cfg"]["width"]
    for lookup, table in ((llm_preset, LLM_PRESETS), (vision_preset, VISION_PRESETS)):
        with pytest.raises(ValueError, match="allowed: " + ", ".join(table)):
            lookup("gpt-2")


def test_vision_widths_are_the_towers_widths():
    """The table's widths (used by plan-time checks) are what open_clip builds."""
    code = (
        "from ablate.model.presets import VISION_PRESETS\n"
        "from ablate.model.vision import meta_vision_tower, tower_width\n"
        "for name, p in VISION_PRESETS.items():\n"
        "    assert tower_width(meta_vision_tower(name)) == p.width, name\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
