"""4-bit NF4 and 8-bit tiny twins run forward and backward on CPU (bitsandbytes >= 0.50)."""

import pytest
import torch
from model_helpers import text_batch

from ablate.model.build import build_multimodal_model
from ablate.model.spec import ModelSpec


@pytest.mark.parametrize(
    "quantization, adapter",
    [("nf4", "bottleneck"), ("int8", "router"), ("nf4", "lora_rep"), ("nf4", "loha")],
)
def test_quantized_twin_forward_backward(quantization, adapter):
    import bitsandbytes as bnb

    spec = ModelSpec(
        llm="tiny-llama2", vision="tiny-clip", precision="fp32", quantization=quantization
    )
    mm = build_multimodal_model(spec, {"name": adapter})
    layer_cls = bnb.nn.Linear4bit if quantization == "nf4" else bnb.nn.Linear8bitLt
    assert any(isinstance(m, layer_cls) for m in mm.llm.modules())
    ids, mask, labels = text_batch(mm.tokenizer, ["Question: Select the solid. Response: C", "Hi"])
    out = mm(ids, mask, labels, torch.randn(2, 3, 64, 64), torch.tensor([True, False]))
    assert torch.isfinite(out.loss)
    out.loss.backward()
    grads = [(n, p.grad) for n, p in mm.trainable_named_parameters()]
    assert all(p.grad is None for n, p in mm.named_parameters() if n not in dict(grads))
    assert any(g is not None and g.abs().sum() > 0 for n, g in grads if n.startswith("visual."))
    assert any(g is not None and g.abs().sum() > 0 for n, g in grads if n.startswith("llm."))


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_nf4_training_after_a_cpu_evaluation_still_reaches_every_adapter(precision):
    """bitsandbytes repacks 4-bit weights for CPU inference (AVX512-BF16 CPUs) and its packed
    kernel has no autograd: without ``keep_4bit_weights_trainable_on_cpu`` the adapters before
    the quantised projections got no gradient after the first validation pass (seen here: the
    tiny NF4 run stopped learning after epoch 1)."""
    spec = ModelSpec(llm="tiny-llama2", vision="tiny-diht", precision=precision, quantization="nf4")
    mm = build_multimodal_model(spec, {"name": "bottleneck"})
    prompts, prompt_mask, _ = text_batch(mm.tokenizer, ["Q? Response:"], padding_side="left")
    image, flag = torch.randn(1, 3, 64, 64), torch.tensor([True])
    shapes = [m.weight.shape for m in mm.llm.modules() if type(m).__name__ == "Linear4bit"]
    mm.eval()
    with torch.autocast("cpu", dtype=torch.float16, enabled=precision == "fp16"):
        mm.generate(prompts, prompt_mask, image, flag, max_new_tokens=3, temperature=0)
    assert [m.weight.shape for m in mm.llm.modules() if type(m).__name__ == "Linear4bit"] == shapes
    mm.train()
    ids, mask, labels = text_batch(mm.tokenizer, ["Question: Select the solid. Response: C"])
    labels[:, 0] = -100
    with torch.autocast("cpu", dtype=torch.float16, enabled=precision == "fp16"):
        out = mm(ids, mask, labels, image, flag, return_logits=False)
    out.loss.backward()
    for layer in mm.llm.model.layers:
        grad = layer.input_layernorm.adapter.up.weight.grad
        assert grad is not None and grad.abs().sum() > 0


def test_random_real_shape_builder_matches_the_meta_count_on_a_twin():
    import bitsandbytes as bnb

    from ablate.model.random_weights import build_random_multimodal_model
    from ablate.model.sizing import count_trainable_parameters

    spec = ModelSpec(llm="tiny-llama2", vision="tiny-diht", precision="fp32", quantization="nf4")
    adapter = {"name": "router", "placement": {"before": ["attn", "mlp"]}}
    mm = build_random_multimodal_model(spec, adapter)
    assert isinstance(mm.llm.model.layers[0].mlp.up_proj, bnb.nn.Linear4bit)
    n = sum(p.numel() for _, p in mm.trainable_named_parameters())
    assert n == count_trainable_parameters(spec, adapter)
    ids = torch.randint(3, 500, (2, 12))
    out = mm(ids, torch.ones_like(ids), ids, torch.randn(2, 3, 64, 64), torch.tensor([True, True]))
    out.loss.backward()
    assert torch.isfinite(out.loss)


def test_bf16_backbones_train_fp32_adapters():
    spec = ModelSpec(llm="tiny-llama", vision="tiny-clip", precision="bf16")
    mm = build_multimodal_model(spec, {"name": "router"})
    assert next(mm.visual.parameters()).dtype == torch.bfloat16 == mm.llm_dtype
    assert all(p.dtype == torch.float32 for _, p in mm.trainable_named_parameters())
    ids, mask, labels = text_batch(mm.tokenizer, ["Question: Select the solid. Response: C", "Hi"])
    out = mm(ids, mask, labels, torch.randn(2, 3, 64, 64), torch.tensor([True, False]))
    out.loss.backward()
    assert torch.isfinite(out.loss) and out.logits.dtype == torch.bfloat16
    ups = [
        p.grad
        for n, p in mm.trainable_named_parameters()
        if n.startswith("visual.") and "conv_B" in n
    ]
    assert ups and all(
        g is not None and g.dtype == torch.float32 and g.abs().sum() > 0 for g in ups
    )


@pytest.mark.parametrize("adapter", ["lora_rep", "bottleneck", "loha"])
def test_fp16_paper_profile_step_with_a_grad_scaler(adapter):
    """fp16 frozen NF4 LLM + fp16 autocast + GradScaler (the seed's recipe): every adapter's
    trainable weights are fp32 masters, so the scaler can unscale them (peft made LoRA fp16)."""
    spec = ModelSpec(llm="tiny-llama2", vision="tiny-diht", precision="fp16", quantization="nf4")
    mm = build_multimodal_model(spec, {"name": adapter}).train()
    params = [p for _, p in mm.trainable_named_parameters()]
    assert all(p.dtype == torch.float32 for p in params)
    ids, mask, labels = text_batch(mm.tokenizer, ["Question: Select the solid. Response: C", "Hi"])
    labels[:, 0] = -100
    optimizer = torch.optim.AdamW(params, lr=1e-3)
    scaler = torch.amp.GradScaler("cpu")
    with torch.autocast("cpu", dtype=torch.float16):
        out = mm(ids, mask, labels, torch.randn(2, 3, 64, 64), torch.tensor([True, False]))
    scaler.scale(out.loss).backward()
    scaler.unscale_(optimizer)
    scaler.step(optimizer)
    scaler.update()
    assert torch.isfinite(out.loss)
