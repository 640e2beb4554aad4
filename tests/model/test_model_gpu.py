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


def test_layouts_on_cuda_equal_and_the_training_forward_never_syncs(make_model, tiny_spec):
    """On CUDA: packed = padded per-sample losses (SDPA fused causal vs block mask, or flash
    varlen when installed), and forward + backward of a laid-out batch make no host sync
    (``torch.cuda.set_sync_debug_mode`` turns any into an error)."""
    import warnings

    from ablate.model.batch_layout import SampleTokens, build_batch_layout

    torch.manual_seed(0)
    mm = make_model({"name": "router"}).cuda().train()
    samples = [
        SampleTokens(list(range(1, 40)), [-100] * 20 + list(range(21, 40)), 3, True),
        SampleTokens(list(range(1, 25)), [-100] * 10 + list(range(11, 25)), 3, False),
    ]
    images = torch.randint(0, 256, (1, 3, 64, 64), dtype=torch.uint8, device="cuda")
    losses = {}
    for layout in ("pad", "pack"):
        batch = build_batch_layout(samples, len(mm.taps), 0, layout).to("cuda")
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out = mm.forward_layout(batch, images)
                out.sample_losses.sum().backward()
        finally:
            torch.cuda.set_sync_debug_mode("default")
        losses[layout] = out.sample_losses.detach()
    torch.testing.assert_close(losses["pack"], losses["pad"], rtol=1e-4, atol=1e-4)
