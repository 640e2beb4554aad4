"""Files shipped with the package: the real LLaMA-2 tokenizer (no weights)."""

from __future__ import annotations

from pathlib import Path

LLAMA2_TOKENIZER_DIR = Path(__file__).parent / "llama2_tokenizer"
"""The LLaMA-2 tokenizer (``tokenizer.json`` + ``tokenizer_config.json``); see its README."""


def load_llama2_tokenizer():  # noqa: ANN201 - a transformers tokenizer
    """The real LLaMA-2 tokenizer with pad = unk (LaVIN pads with 0, the unk id)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(LLAMA2_TOKENIZER_DIR))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.unk_token
    return tokenizer
