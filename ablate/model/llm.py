"""The builder that loads an LLM preset (LLaMA v1, LLaMA-2, their tiny twins).

The presets are data in :mod:`ablate.model.presets`, with their real dimensions written in
(torchtune-style builders), so trainable-parameter counts and
memory estimates are computed on the meta device without any weights. Weights come from
``model.llm_path`` (a local transformers directory or a hub id) through ``from_pretrained``,
optionally frozen in 4-bit NF4 (double quant) or 8-bit through bitsandbytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ablate.model import twins
from ablate.model.presets import LLMPreset, llm_preset
from ablate.model.spec import ModelSpec

if TYPE_CHECKING:
    import torch
    from transformers import LlamaConfig, PreTrainedModel, PreTrainedTokenizerBase


DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def torch_dtype(precision: str) -> torch.dtype:
    """The torch dtype of a ``precision`` name (bf16, fp16, fp32)."""
    import torch

    return getattr(torch, DTYPES[precision])


def get_llm_preset(name: str) -> LLMPreset:
    """Look up an LLM preset; unknown names raise ValueError listing the allowed ones."""
    return llm_preset(name)


def llm_config(name: str) -> LlamaConfig:
    """The ``LlamaConfig`` of a preset at its real shape (twins: the tokenizer's vocabulary)."""
    from transformers import LlamaConfig

    preset = get_llm_preset(name)
    if preset.twin:
        return LlamaConfig.from_pretrained(twin_llm_dir(name))
    return LlamaConfig(**preset.config, tie_word_embeddings=False)


def twin_llm_dir(name: str) -> Path:
    """The twin's transformers directory, written on first use."""
    preset = get_llm_preset(name)
    return twins.materialise(name, lambda out: twins.write_llm_twin(preset.config, out))


def resolve_llm_path(spec: ModelSpec) -> str:
    """Where the LLM's weights come from: ``llm_path``, the twin folder, or the preset's hub id."""
    preset = get_llm_preset(spec.llm)
    if spec.llm_path:
        return spec.llm_path
    if preset.twin:
        return str(twin_llm_dir(spec.llm))
    assert preset.default_path is not None
    return preset.default_path


def quantization_config(spec: ModelSpec) -> Any:
    """The bitsandbytes config for ``spec.quantization`` (None when unquantised)."""
    if spec.quantization == "none":
        return None
    from transformers import BitsAndBytesConfig

    if spec.quantization == "nf4":
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch_dtype(spec.precision),
        )
    return BitsAndBytesConfig(load_in_8bit=True)


def _missing_weights(spec: ModelSpec, path: str, reason: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"cannot load LLM weights for preset {spec.llm!r} from {path!r}: {reason}. Point to a "
        "local transformers directory (or a reachable hub id) with "
        "`model.llm_path: /path/to/llama-2-7b-hf` in the run spec, or use a tiny twin "
        "(`model.llm: tiny-llama2`)."
    )


def _looks_local(path: str) -> bool:
    return path.startswith(("/", ".", "~")) or Path(path).exists()


def load_llm(
    spec: ModelSpec, device: str = "cpu"
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load the frozen LLM and its tokenizer for ``spec``.

    Raises:
        FileNotFoundError: the weights are missing or the hub id cannot be reached (one message
            naming the preset, the path tried and how to point to weights).
    """
    from transformers import AutoTokenizer, LlamaForCausalLM

    path = resolve_llm_path(spec)
    if _looks_local(path) and not Path(path).expanduser().is_dir():
        raise _missing_weights(spec, path, "no such directory")
    path = str(Path(path).expanduser()) if _looks_local(path) else path
    quant = quantization_config(spec)
    kwargs: dict[str, Any] = {"dtype": torch_dtype(spec.precision)}
    if quant is not None:
        kwargs["quantization_config"] = quant
        kwargs["device_map"] = {"": device}
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = LlamaForCausalLM.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as err:  # missing files, unreachable hub, gated repo
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise _missing_weights(spec, path, first_line) from None
    if quant is None:
        model.to(device)
    else:
        keep_4bit_weights_trainable_on_cpu(model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    model.requires_grad_(False)
    model.eval()
    return model, tokenizer


def keep_4bit_weights_trainable_on_cpu(model: Any) -> int:
    """Stop bitsandbytes repacking 4-bit weights for CPU inference; returns the layers changed.

    bitsandbytes 0.50 repacks a ``Linear4bit``'s weight into a CPU inference layout the first time
    it runs in eval mode on an input without grad, on CPUs with AVX512-BF16, and never unpacks
    it. The packed path (``gemv_4bit``) has no autograd: every later training step gets no
    gradient through the frozen LLM, silently. A CPU run that validates after an epoch (the tiny
    default) then stops learning. Turning the repack off keeps one weight layout for training and
    evaluation (tests/model/test_model_quantized.py).
    """
    import bitsandbytes as bnb

    changed = 0
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit) and module.support_avx512bf16_for_cpu:
            module.support_avx512bf16_for_cpu = False
            changed += 1
    return changed


def meta_llm(name: str) -> PreTrainedModel:
    """The LLM at real shape on the meta device (no allocation): for counts and estimates."""
    import torch
    from transformers import LlamaForCausalLM

    config = llm_config(name)  # a twin is written on first use: not under the meta device
    with torch.device("meta"):
        return LlamaForCausalLM(config)
