"""What a training run achieved per second: tokens, samples, model FLOP utilisation, memory.

Every run records these (``speed/tokens_per_s``, ``speed/samples_per_s``, ``speed/mfu``,
``speed/padding_ratio``, ``speed/peak_gpu_memory_gib``; training alone), so a researcher can
compare runs and machines, and a plan can estimate GPU-hours from earlier runs on the same GPU.

FLOPs count what a frozen-backbone step must compute: per useful LLM token 4 x the decoder's
matmul parameters (forward 2N, backward to the activations 2N; no weight gradients), and per
ViT token 4 x the tower's parameters (gradients flow through it to the vision adapters).
Attention scores, the LM head on answer positions and the adapters are left out (a few percent),
so MFU is slightly understated, as is customary.
"""

from __future__ import annotations

from typing import Any

import torch

from ablate.train.cost import peak_tflops


def llm_matmul_parameters(config: Any) -> int:
    """Decoder matmul parameters from a LLaMA config (grouped-query attention counted)."""
    d = int(config.hidden_size)
    heads = int(config.num_attention_heads)
    kv = int(getattr(config, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(config, "head_dim", None) or d // heads)
    per_layer = (
        2 * d * heads * head_dim + 2 * d * kv * head_dim + 3 * d * int(config.intermediate_size)
    )
    return per_layer * int(config.num_hidden_layers)


class Throughput:
    """Counts what the training loop computed; turns it into per-second figures at the end.

    Args:
        device: where training runs.
        model: the ``MultimodalModel`` (its LLM config and vision tower size the FLOP model).
    """

    def __init__(self, device: str, model: Any) -> None:
        self.device = torch.device(device)
        self.llm_params = llm_matmul_parameters(model.llm.config)
        visual = model.visual
        self.vision_params = sum(p.numel() for p in visual.parameters())
        self.vision_tokens = int(visual.positional_embedding.shape[0])
        self.samples = self.useful = self.computed = self.images = 0
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    def add(self, layout: Any) -> None:
        """Count one micro-batch (a :class:`~ablate.model.batch_layout.BatchLayout`)."""
        self.samples += layout.n_samples
        self.useful += layout.useful_tokens
        self.computed += layout.computed_tokens
        self.images += layout.n_images  # host ints: no sync

    def flops(self) -> float:
        """Model FLOPs of what was counted (see the module docstring)."""
        vision = self.images * self.vision_tokens * self.vision_params
        return 4.0 * (self.useful * self.llm_params + vision)

    def metrics(self, seconds: float) -> dict[str, float]:
        """``speed/*`` throughput metrics over ``seconds`` of training."""
        if not self.samples or seconds <= 0:
            return {"speed/samples_per_s": 0.0}
        out = {
            "speed/samples_per_s": self.samples / seconds,
            "speed/tokens_per_s": self.useful / seconds,
            "speed/padding_ratio": self.computed / max(self.useful, 1),
            "speed/tflops_per_s": self.flops() / seconds / 1e12,
        }
        if self.device.type == "cuda":
            name = torch.cuda.get_device_name(self.device)
            peak = peak_tflops(name)
            if peak:
                out["speed/mfu"] = out["speed/tflops_per_s"] / peak
            out["speed/peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated(self.device) / 2**30
        return out
