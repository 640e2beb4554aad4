"""Helpers shared by the model tests (inputs, the adapter cases)."""

from __future__ import annotations


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
