"""Throughput of ablate's MultimodalModel at real shapes with random weights (one GPU).

Same shape as ../shared/bench/gpu_anchor.py: frozen LLaMA-2-7B + BA dim 16 groups 2 before attention
and MLP of every block, 512 tokens, plus (unlike the anchor) the DIHT ViT-L/14-336 tower with its
adapters, the neck and u_m, end to end. Prints one JSON line per configuration; run it in the same
session as the anchor and report ratios.

    python bench/bench_model.py [--quant none nf4] [--bs 1 4 16]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from ablate.model.random_weights import build_random_multimodal_model
from ablate.model.sizing import estimate_gpu_memory_gib
from ablate.model.spec import ModelSpec


def timeit(step, n: int = 8, warm: int = 3) -> float:
    for _ in range(warm):
        step()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(n):
        step()
    torch.cuda.synchronize()
    return (time.perf_counter() - t) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quant", nargs="+", default=["none", "nf4"])
    parser.add_argument("--bs", nargs="+", type=int, default=[1, 4, 16])
    parser.add_argument("--seq", type=int, default=512)
    parser.add_argument(
        "--images", type=float, default=1.0, help="fraction of samples with an image"
    )
    args = parser.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = True
    adapter = {
        "name": "bottleneck",
        "dim": 16,
        "groups": 2,
        "placement": {"before": ["attn", "mlp"]},
    }
    for quant in args.quant:
        for row in bench_quant(quant, adapter, args.bs, args.seq, args.images):
            print(json.dumps(row), flush=True)
        torch.cuda.empty_cache()


def bench_quant(quant: str, adapter: dict, batch_sizes: list[int], seq: int, images: float):
    """Yield one measurement per batch size for one quantisation."""
    spec = ModelSpec(precision="bf16", quantization=quant)
    mm = build_random_multimodal_model(spec, adapter, device="cuda").train()
    opt = torch.optim.AdamW([p for _, p in mm.trainable_named_parameters()], lr=9e-3)
    text_len = seq - 1 - len(mm.taps)  # u_m and the visual tokens fill the rest
    for bs in batch_sizes:
        ids = torch.randint(3, 32000, (bs, text_len), device="cuda")
        batch = (
            ids,
            torch.ones_like(ids),
            ids,
            torch.randn(bs, 3, mm.image_size, mm.image_size, device="cuda"),
            torch.rand(bs, device="cuda") < images,
        )

        def step(batch=batch):
            loss = mm(*batch).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        torch.cuda.reset_peak_memory_stats()
        try:
            dt = timeit(step)
        except torch.OutOfMemoryError:
            torch.cuda.empty_cache()
            yield {"quant": quant, "bs": bs, "oom": True}
            continue
        yield {
            "what": "ablate llama2-7b + diht-vit-l14-336",
            "quant": quant,
            "bs": bs,
            "seq": seq,
            "step_ms": round(dt * 1e3, 1),
            "samples_per_s": round(bs / dt, 2),
            "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1),
            "estimate_gib": estimate_gpu_memory_gib(spec, adapter, bs, seq),
        }


if __name__ == "__main__":
    main()
