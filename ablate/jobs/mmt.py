"""The ``mmt`` job kind: multimodal model tuning (adapters on a frozen ViT + LLaMA) on ScienceQA.

This module holds only the schema (torch-free, so planning a sweep never imports torch) and the
``tiny`` scale; the work is :func:`ablate.jobs.mmt_recipe.run_mmt`, imported inside the worker.

Sections of an ``mmt`` spec::

    model:   ModelSpec      backbones, precision, quantisation, neck
    adapter: AdapterConfig  chosen by ``name`` (bottleneck, router, ...), validated by its schema
    data:    DataSpec       ScienceQA copy (or synthetic), prompt format, splits
    train:   TrainSpec      optimiser, schedule, batch, precision
    eval:    EvalSpec       generation and the unparseable-answer policy

``--scale tiny`` (:func:`scale_mmt`) swaps the real backbones for their tiny twins and the data for
the synthetic ScienceQA twin, and keeps everything else the paper profile runs: its precision,
NF4 quantisation, autocast and gradient scaler, micro-batch x accumulation with length grouping,
the seed's token layout and the real LLaMA-2 tokenizer. What a CPU cannot run is substituted and
listed in the spec's ``substitutions`` (paged AdamW32bit needs CUDA: torch AdamW). The numbers of
the tiny schedule (epochs, sizes, learning rate) are data in the sweep's ``scales.tiny`` block.
"""

from __future__ import annotations

import copy
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, SerializeAsAny, model_validator

from ablate.data.spec import DataSpec
from ablate.evaluation.spec import EvalSpec
from ablate.jobs.mmt_needs import mmt_needs
from ablate.model.adapters import AdapterConfig, BottleneckConfig, validate_adapter_config
from ablate.model.presets import llm_preset, vision_preset
from ablate.model.spec import ModelSpec, twin_of
from ablate.spec.base import SpecModel, invalid_at, nonsemantic
from ablate.spec.job_kinds import JobKind, register_job
from ablate.train.spec import TrainSpec

AdapterSection = Annotated[SerializeAsAny[AdapterConfig], BeforeValidator(validate_adapter_config)]
"""An adapter config validated by the schema its ``name`` selects, dumped with all its fields."""


class MmtConfig(SpecModel):
    """Everything one ``mmt`` run computes from (besides ``job`` and ``seed``)."""

    model: ModelSpec = ModelSpec()
    """Backbones and neck (default: LLaMA-2-7B + DIHT ViT-L/14-336, the paper's best)."""
    adapter: AdapterSection = Field(default_factory=BottleneckConfig)
    """The adapter method and its hyperparameters (default: BA, dim 16, groups 2)."""
    data: DataSpec = DataSpec()
    """The questions and how they are prompted."""
    train: TrainSpec = TrainSpec()
    """Optimiser, schedule and batching."""
    eval: EvalSpec = EvalSpec()
    """Generation settings and scoring policy."""
    substitutions: tuple[str, ...] = nonsemantic(())
    """What a scale replaced because the machine cannot run it (``--scale tiny``: the paged
    optimiser), recorded with the run; the spec's other fields say what actually ran."""

    @model_validator(mode="after")
    def _groups_divide_widths(self) -> MmtConfig:
        """Grouped projections split every width they touch into ``groups`` equal parts.

        Checked here, at plan time, from the presets' widths: otherwise the worker's first model
        build fails, and every retry with it.
        """
        adapter = self.adapter
        groups = getattr(adapter, "groups", None)
        if groups is None:
            return self
        widths = {"adapter.dim": getattr(adapter, "dim", groups)}
        if adapter.placement.llm and adapter.llm_block_adapters:
            widths[f"the width of {self.model.llm}"] = llm_preset(self.model.llm).width
        if adapter.placement.vision:
            widths[f"the width of {self.model.vision}"] = vision_preset(self.model.vision).width
        bad = [f"{name} ({width})" for name, width in widths.items() if width % groups]
        if bad:
            raise invalid_at(
                self, ("adapter", "groups"), f"groups must divide {' and '.join(bad)}", groups
            )
        return self


SCALES = ("tiny",)


def scale_mmt(sections: dict[str, Any], name: str) -> dict[str, Any]:
    """Rewrite raw (unvalidated) spec sections for a named scale.

    ``tiny``: LLM and vision presets -> their tiny twins, synthetic data, and paged AdamW32bit ->
    torch AdamW (bitsandbytes' paged optimisers need CUDA; listed in ``substitutions``). Precision,
    quantisation, autocast, batching and the adapter are kept, so a tiny run executes the same
    branches as the real one; the sweep's ``scales.tiny`` block sets the tiny schedule.

    Args:
        sections: the spec's sections as plain dicts (``model``, ``adapter``, ...); not modified.
        name: the scale name.

    Raises:
        ValueError: unknown scale name (the message lists the allowed ones).
    """
    if name not in SCALES:
        raise ValueError(f"unknown scale {name!r} for job mmt; allowed: {', '.join(SCALES)}")
    out = copy.deepcopy(sections)
    model = dict(out.get("model") or {})
    defaults = ModelSpec()
    model["llm"] = twin_of(model.get("llm", defaults.llm))
    model["vision"] = twin_of(model.get("vision", defaults.vision))
    model.pop("llm_path", None)
    model.pop("vision_path", None)
    out["model"] = model
    data = dict(out.get("data") or {})
    data["dataset"] = "synthetic"
    data.pop("root", None)
    data.pop("source_format", None)
    out["data"] = data
    train = dict(out.get("train") or {})
    substitutions = list(out.get("substitutions") or ())
    if train.get("optimizer") == "paged_adamw32bit":
        train["optimizer"] = "adamw"
        substitutions.append("train.optimizer: paged_adamw32bit -> adamw (paged AdamW needs CUDA)")
    out["train"] = train
    out["substitutions"] = tuple(substitutions)
    return out


def describe_mmt(spec: Any) -> dict[str, Any]:
    """Plan columns: trainable parameters, a peak-GPU-memory estimate and GPU-hours (meta device).

    Memory at the run's own micro-batch (``auto``: at 1, the least it will use) and
    ``max_seq_len`` (an upper bound: batches are not padded to it); GPU-hours from the FLOP model
    of :mod:`ablate.train.cost` (one H100 at an assumed MFU, named in the README); ``ablate plan``
    calibrates it by earlier runs (:mod:`ablate.train.calibration`).
    """
    from ablate.model.sizing import describe_model
    from ablate.train.calibration import flop_model_hours

    cfg: MmtConfig = spec.config
    micro = cfg.train.micro_batch
    micro = cfg.train.batch_size if micro is None else (1 if micro == "auto" else int(micro))
    out = describe_model(cfg.model, cfg.adapter, batch_size=micro, seq_len=cfg.data.max_seq_len)
    out["gpu_h"] = round(flop_model_hours(cfg), 2)
    return out


register_job(
    JobKind(
        name="mmt",
        config_cls=MmtConfig,
        run="ablate.jobs.mmt_recipe:run_mmt",
        scale=scale_mmt,
        describe=describe_mmt,
        needs=mmt_needs,
    )
)
