"""Tiny twins: small, seeded stand-ins for the real backbones, saved in the real formats.

A twin has the real classes (``LlamaForCausalLM``, open_clip ``VisionTransformer``) at a few layers
and a small width, so every code path (saving, loading, quantising, adapting) runs on a CPU in
seconds. Twins are materialised on first use into ``$ABLATE_TWIN_DIR`` (default
``~/.cache/ablate/twins``) from a fixed seed, written to a temporary folder and renamed into place
so two workers never see half a twin, and then loaded back through the same loading code as real
weights (:mod:`ablate.model.llm`, :mod:`ablate.model.vision`).
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ablate.store.files import write_dir_atomic

TWIN_VERSION = "v3"  # v2: LLM final norm x8, vision twins seeded by name; v3: LLaMA-2 tokenizer
TWIN_SEED = 1234


def twin_root() -> Path:
    """Folder the twins live in: ``$ABLATE_TWIN_DIR`` or ``~/.cache/ablate/twins``."""
    root = os.environ.get("ABLATE_TWIN_DIR") or str(Path.home() / ".cache" / "ablate" / "twins")
    return Path(root).expanduser()


def materialise(name: str, write: Callable[[Path], None]) -> Path:
    """Return ``<twin_root>/<name>-<version>``, writing it once with ``write(tmp_dir)``.

    The folder is written under a temporary name and renamed into place: a reader sees a complete
    twin or none, and when two workers race, the loser's copy is discarded.
    """
    final = twin_root() / f"{name}-{TWIN_VERSION}"
    if not final.is_dir():
        write_dir_atomic(final, write)
    return final


def build_twin_tokenizer():  # noqa: ANN201 - a transformers tokenizer
    """The twins' tokenizer: the real LLaMA-2 tokenizer shipped in :mod:`ablate.assets`.

    The real file rather than a small tokenizer trained the same way: it is what the 7B runs
    tokenize with, so the tiny default runs the real SentencePiece path (BOS only, pad = unk,
    ``"Response:" + "The"`` joined into ``The``, ``"Image: "`` as three pieces) and real prompt
    lengths; the only price is a 32,000-row embedding in every LLM twin (4M parameters).
    """
    from ablate.assets import load_llama2_tokenizer

    return load_llama2_tokenizer()


def write_llm_twin(preset_config: dict, out: Path) -> None:
    """Write a random-init ``LlamaForCausalLM`` twin and its tokenizer with ``save_pretrained``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_twin_tokenizer()
    config = LlamaConfig(
        **preset_config,
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    with torch.random.fork_rng(devices=[]):  # the caller's RNG stream is left untouched
        torch.manual_seed(TWIN_SEED)
        model = LlamaForCausalLM(config)
        with torch.no_grad():
            # A pretrained LM is confident; a random 0.02-std head reading a normalised state is
            # not (no token gets past ~1%), and a frozen twin then cannot learn to answer.
            model.model.norm.weight.mul_(8.0)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def register_vision_twin_config(model_name: str, config: dict) -> None:
    """Register an open_clip model config under ``model_name`` (idempotent)."""
    from open_clip.factory import _MODEL_CONFIGS

    _MODEL_CONFIGS.setdefault(model_name, config)


def write_vision_twin(
    build_clip: Callable[[], Any], model_name: str, file_name: str, key_prefix: str, out: Path
) -> None:
    """Write a random-init open_clip CLIP twin's full state dict (text tower included) to a file.

    Args:
        build_clip: makes the random open_clip model (the vision module's builder, passed in so
            that this module needs nothing from it).
        model_name: the twin's open_clip config name (seeds the init).
        file_name: the file to write in ``out``.
        key_prefix: mimics the real checkpoint's format (ALIP: ``module.``).
        out: the twin's folder.
    """
    import torch

    with torch.random.fork_rng(devices=[]):  # the caller's RNG stream is left untouched
        # seeded by name: twins of different towers (DIHT, ALIP) are different networks
        torch.manual_seed(TWIN_SEED + zlib.crc32(model_name.encode()) % 10_000)
        clip = build_clip()
    state = {f"{key_prefix}{k}": v for k, v in clip.state_dict().items()}
    torch.save(state, out / file_name)
