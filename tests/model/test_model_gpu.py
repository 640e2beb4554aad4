"""Real-shape GPU smoke test: LLaMA-2-7B (NF4) + DIHT ViT-L/14-336, random weights, one step."""

import json
import time

import pytest
import torch

from ablate.model.spec import ModelSpec

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


def test_real_shape_nf4_model_trains_one_step():
    from ablate.model.random_weights import build_random_multimodal_model
    from ablate.model.sizing import estimate_gpu_memory_gib

    spec = ModelSpec(
        llm="llama2-7b", vision="diht-vit-l14-336", precision="bf16", quantization="nf4"
    )
    adapter = {"name": "bottleneck", "dim": 16, "groups": 2}
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    mm = build_random_multimodal_model(spec, adapter, device="cuda").train()
    build_s = time.perf_counter() - t0
    params = mm.trainable_named_parameters()
    assert sum(p.numel() for _, p in params) == 3_314_688
    frozen = mm.llm.model.layers[0].self_attn.q_proj.weight.data.clone()
    embed = mm.llm.get_input_embeddings().weight.data.clone()
    opt = torch.optim.AdamW([p for _, p in params], lr=1e-3)
    ids = torch.randint(3, 32000, (1, 512), device="cuda")
    ids[:, 0] = 1
    mask = torch.ones_like(ids)
    labels = ids.clone()
    labels[:, :400] = -100
    images = torch.randn(1, 3, 336, 336, device="cuda")
    has_image = torch.tensor([True], device="cuda")
    before = {n: p.detach().clone() for n, p in params if ".up." in n}
    torch.cuda.synchronize()
    t1 = time.perf_counter()
    out = mm(ids, mask, labels, images, has_image)
    out.loss.backward()
    opt.step()
    torch.cuda.synchronize()
    step_s = time.perf_counter() - t1
    assert torch.isfinite(out.loss)
    assert torch.equal(frozen, mm.llm.model.layers[0].self_attn.q_proj.weight.data)
    assert torch.equal(embed, mm.llm.get_input_embeddings().weight.data)
    assert any(not torch.equal(v, dict(params)[n]) for n, v in before.items())
    figures = {
        "device": torch.cuda.get_device_name(),
        "build_s": round(build_s, 1),
        "first_step_s": round(step_s, 2),
        "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
        "estimate_gib": estimate_gpu_memory_gib(spec, adapter, 1, 512),
        "loss": round(float(out.loss), 3),
    }
    print(json.dumps(figures))
