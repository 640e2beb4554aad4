"""Backbone presets as data: one table for the LLMs, one for the vision towers.

A preset is everything a spec's short name (``model.llm: llama2-7b``) stands for: the real
dimensions (written in, torchtune-style, so parameter counts, memory estimates and plan-time
checks need no weights), where the weights come from, and its tiny twin (same classes, a few
layers, small width) that ``--scale tiny`` swaps in. Adding a preset is adding one row here.

This module is torch-free: validating a spec, planning and ``ablate status`` read it. The builders
that turn a preset into modules are :mod:`ablate.model.llm` and :mod:`ablate.model.vision`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class LLMPreset:
    """One LLM preset.

    Attributes:
        name: short name (``llama2-7b``).
        config: ``LlamaConfig`` fields (dimensions written in).
        default_path: hub id used when ``model.llm_path`` is not set (None for twins).
        tiny: the tiny twin ``--scale tiny`` swaps in; ``None`` when this preset is a twin.
    """

    name: str
    config: dict[str, Any] = field(default_factory=dict)
    default_path: str | None = None
    tiny: str | None = None

    @property
    def twin(self) -> bool:
        """Whether this is a tiny twin materialised locally from a seed."""
        return self.tiny is None

    @property
    def width(self) -> int:
        """Hidden width of the decoder blocks (what an LLM adapter sees)."""
        return int(self.config["hidden_size"])


@dataclass(frozen=True)
class VisionPreset:
    """One vision preset.

    Attributes:
        name: short name (``diht-vit-l14-336``).
        model_name: open_clip model config name.
        quick_gelu: OpenAI CLIP weights use QuickGELU; DIHT and ALIP use GELU.
        image_size: input resolution of the image transform.
        checkpoint_format: ``open_clip`` (plain open_clip state dict), ``diht`` (plain state dict),
            ``alip`` (state dict whose keys may carry a ``module.`` prefix).
        width: token width of the tower's blocks (what a vision adapter sees).
        tiny: the tiny twin ``--scale tiny`` swaps in; ``None`` when this preset is a twin.
        pretrained_tag: open_clip pretrained tag used when no ``vision_path`` is given.
        pretrained_hub: the hub repository open_clip downloads that tag from (the preflight looks
            for it in the local hub cache).
        file_name: the checkpoint's usual file name (shown in errors, used by twins).
        twin_config: open_clip model config of a tiny twin (None for real towers).
        mean, std: normalisation of the image transform.
    """

    name: str
    model_name: str
    quick_gelu: bool
    image_size: int
    checkpoint_format: str
    width: int
    tiny: str | None = None
    pretrained_tag: str | None = None
    pretrained_hub: str | None = None
    file_name: str = "open_clip_model.pt"
    twin_config: dict[str, Any] | None = None
    mean: tuple[float, float, float] = OPENAI_MEAN
    std: tuple[float, float, float] = OPENAI_STD

    @property
    def twin(self) -> bool:
        """Whether this is a tiny twin."""
        return self.twin_config is not None


_LLAMA_7B = dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32,
                 num_key_value_heads=32, intermediate_size=11008, vocab_size=32000)  # fmt: skip
_LLAMA_13B = dict(hidden_size=5120, num_hidden_layers=40, num_attention_heads=40,
                  num_key_value_heads=40, intermediate_size=13824, vocab_size=32000)  # fmt: skip
# widths are multiples of 64: bitsandbytes' CPU 4-bit kernels need out_features % 32 == 0
_TINY = dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=4,
             num_key_value_heads=4, intermediate_size=384)  # fmt: skip
_V1 = dict(max_position_embeddings=2048, rms_norm_eps=1e-6)
_V2 = dict(max_position_embeddings=4096, rms_norm_eps=1e-5)

# fmt: off
LLM_PRESETS: dict[str, LLMPreset] = {p.name: p for p in (
    LLMPreset("llama-7b", {**_LLAMA_7B, **_V1}, "huggyllama/llama-7b", tiny="tiny-llama"),
    LLMPreset("llama2-7b", {**_LLAMA_7B, **_V2}, "meta-llama/Llama-2-7b-hf", tiny="tiny-llama2"),
    LLMPreset("llama2-13b", {**_LLAMA_13B, **_V2}, "meta-llama/Llama-2-13b-hf", tiny="tiny-llama2"),
    LLMPreset("tiny-llama", {**_TINY, **_V1}),
    LLMPreset("tiny-llama2", {**_TINY, **_V2}),
)}
# fmt: on

_TINY_WIDTH = 64


def _tiny_config(layers: int, quick_gelu: bool) -> dict[str, Any]:
    return {
        "embed_dim": 32,
        "quick_gelu": quick_gelu,
        "vision_cfg": {
            "image_size": 64,
            "layers": layers,
            "width": _TINY_WIDTH,
            "head_width": 16,
            "patch_size": 16,
        },  # fmt: skip
        "text_cfg": {"context_length": 16, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1},
    }


# fmt: off
VISION_PRESETS: dict[str, VisionPreset] = {p.name: p for p in (
    #            name                model_name          gelu  size  checkpoint   width
    VisionPreset("clip-vit-l14",     "ViT-L-14",         True,  224, "open_clip", 1024,
                 tiny="tiny-clip", pretrained_tag="openai",
                 pretrained_hub="timm/vit_large_patch14_clip_224.openai"),
    VisionPreset("clip-vit-l14-336", "ViT-L-14-336",     True,  336, "open_clip", 1024,
                 tiny="tiny-clip", pretrained_tag="openai",
                 pretrained_hub="timm/vit_large_patch14_clip_336.openai"),
    VisionPreset("diht-vit-l14-336", "ViT-L-14-336",     False, 336, "diht",      1024,
                 tiny="tiny-diht", file_name="diht_vitl14_336px.pth"),
    VisionPreset("alip-vit-b32",     "ViT-B-32",         False, 224, "alip",      768,
                 tiny="tiny-alip", file_name="ALIP_YFCC15M_B32.pt"),
    VisionPreset("tiny-clip",        "ablate-tiny-clip", True,  64,  "open_clip", _TINY_WIDTH,
                 twin_config=_tiny_config(8, True)),
    VisionPreset("tiny-diht",        "ablate-tiny-diht", False, 64,  "diht",      _TINY_WIDTH,
                 file_name="diht_tiny.pth", twin_config=_tiny_config(12, False)),
    # fewer blocks, fewer taps, as ViT-B vs ViT-L
    VisionPreset("tiny-alip",        "ablate-tiny-alip", False, 64,  "alip",      _TINY_WIDTH,
                 file_name="alip_tiny.pt", twin_config=_tiny_config(8, False)),
)}
# fmt: on


def llm_preset(name: str) -> LLMPreset:
    """Look up an LLM preset.

    Raises:
        ValueError: unknown name; the message lists the allowed ones.
    """
    if name not in LLM_PRESETS:
        raise ValueError(f"unknown llm preset {name!r}; allowed: {', '.join(LLM_PRESETS)}")
    return LLM_PRESETS[name]


def vision_preset(name: str) -> VisionPreset:
    """Look up a vision preset.

    Raises:
        ValueError: unknown name; the message lists the allowed ones.
    """
    if name not in VISION_PRESETS:
        raise ValueError(f"unknown vision preset {name!r}; allowed: {', '.join(VISION_PRESETS)}")
    return VISION_PRESETS[name]


def twin_of(name: str) -> str:
    """The tiny twin of a preset of either table (twins map to themselves).

    Raises:
        ValueError: unknown preset; the message lists the allowed names.
    """
    preset = LLM_PRESETS.get(name) or VISION_PRESETS.get(name)
    if preset is None:
        allowed = sorted({*LLM_PRESETS, *VISION_PRESETS})
        raise ValueError(f"unknown model preset {name!r}; allowed: {', '.join(allowed)}")
    return preset.tiny or preset.name


def is_twin(name: str) -> bool:
    """Whether ``name`` is a tiny twin (built locally from a seed, never downloaded)."""
    return twin_of(name) == name
