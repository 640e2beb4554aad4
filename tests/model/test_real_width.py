"""Real-width smoke test (slow): LLaMA-2-7B's width at 2 of its 32 layers + DIHT ViT-L/14-336.

Random weights in the real formats (safetensors LLM directory with the real LLaMA-2 tokenizer; the
full open_clip state dict saved with ``torch.save`` as DIHT's file), loaded by the real loaders
(``build_multimodal_model``), in bf16 and in 4-bit NF4 with double quantisation (bitsandbytes on
the CPU). One training step under bf16 autocast and an AdamW step, greedy KV-cached generation,
and a checkpoint round trip into a freshly built model, on two real-length ScienceQA-style
prompts (one image question, one text-only). Figures are printed as one JSON line per variant
(``pytest -m slow -s``). The layer-reduced memory model it is checked against has a fast test of
its own (meta device, not slow).
"""

from __future__ import annotations

import json
import shutil
import time
import zlib

import pytest
import real_width as rw
import torch

ADAPTER = {"name": "bottleneck", "dim": 16, "groups": 2}
LLM_LAYERS = 2
TOLERANCE = 0.25  # the issue: the memory model within 25% of the measured peak
MIB = 2**20


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """The random weights, written once for both variants: (LLM directory, DIHT file).

    ~3 GB on disk, removed after the module (pytest keeps its last temporary folders).
    """
    root = tmp_path_factory.mktemp("real-width")
    llm = rw.write_llm(root / "llama2-7b-2-layers", layers=LLM_LAYERS)
    vision = rw.write_vision(root / "diht_vitl14_336px.pth")
    rw.release_free_memory()
    yield llm, vision
    shutil.rmtree(root, ignore_errors=True)


def _spec(weights, quantization: str):
    from ablate.model.spec import ModelSpec

    llm, vision = weights
    return ModelSpec(
        llm=rw.LLM_PRESET,
        llm_path=str(llm),
        vision=rw.VISION_PRESET,
        vision_path=str(vision),
        precision="bf16",
        quantization=quantization,
    )


def _frozen_tensors(model) -> dict[str, torch.Tensor]:
    """Every frozen weight of both backbones (4-bit ones as their packed bytes)."""
    trainable = {id(p) for _, p in model.trainable_named_parameters()}
    named = [*model.llm.named_parameters(prefix="llm"), *model.visual.named_parameters("visual")]
    return {n: p for n, p in named if id(p) not in trainable}


def _fingerprints(tensors: dict[str, torch.Tensor]) -> dict[str, int]:
    """CRC-32 of every tensor's bytes; reading them also makes every weight page resident."""
    return {
        n: zlib.crc32(t.detach().contiguous().view(-1).view(torch.uint8).numpy())
        for n, t in tensors.items()
    }


def _model_bytes(model) -> int:
    """Bytes of the model's tensors: parameters, buffers and bitsandbytes quantisation state."""
    seen: dict[int, int] = {}
    for t in [*model.parameters(), *model.buffers()]:
        seen[id(t)] = t.numel() * t.element_size()
        state = getattr(t, "quant_state", None)
        while state is not None:  # double quantisation nests a second state
            for extra in (state.absmax, state.code, getattr(state, "offset", None)):
                if isinstance(extra, torch.Tensor):
                    seen[id(extra)] = extra.numel() * extra.element_size()
            state = getattr(state, "state2", None)
    return sum(seen.values())


def _check_real_shapes(model, quantization: str) -> None:
    from open_clip.transformer import QuickGELU

    from ablate.model.llm import llm_config
    from ablate.model.vision import tower_blocks, tower_width

    real, config = llm_config(rw.LLM_PRESET), model.llm.config
    for key in ("hidden_size", "num_attention_heads", "intermediate_size", "vocab_size"):
        assert getattr(config, key) == getattr(real, key), key
    assert config.rms_norm_eps == real.rms_norm_eps == 1e-5
    assert config.num_hidden_layers == len(model.llm.model.layers) == LLM_LAYERS  # not overridden
    assert len(tower_blocks(model.visual)) == 24 and tower_width(model.visual) == 1024
    assert [i + 1 for i in model.taps] == [4, 8, 12, 16, 20, 24]
    assert not any(isinstance(m, QuickGELU) for m in model.visual.modules())  # DIHT: GELU
    assert model.image_size == 336 and model.tokenizer.pad_token == model.tokenizer.unk_token
    q_proj = model.llm.model.layers[0].self_attn.q_proj
    if quantization == "nf4":
        import bitsandbytes as bnb

        assert isinstance(q_proj, bnb.nn.Linear4bit)
        assert q_proj.weight.quant_state.quant_type == "nf4" and q_proj.weight.quant_state.nested
        assert model.llm.lm_head.weight.dtype == torch.bfloat16  # the head stays unquantised
    else:
        assert q_proj.weight.dtype == torch.bfloat16


def test_memory_model_of_a_layer_reduced_llm_counts_the_kept_layers():
    """``llm_layers`` keeps the preset's first layers (and their adapters) on the meta device."""
    from ablate.model.build import build_meta_model
    from ablate.model.sizing import estimate_gpu_memory_gib, gpu_memory_terms
    from ablate.model.spec import ModelSpec

    spec = ModelSpec(llm=rw.LLM_PRESET, vision=rw.VISION_PRESET)
    full = gpu_memory_terms(spec, ADAPTER, 2, 256)
    assert gpu_memory_terms(spec, ADAPTER, 2, 256, llm_layers=32) == full
    two = gpu_memory_terms(spec, ADAPTER, 2, 256, llm_layers=LLM_LAYERS)
    layer = 4 * 4096 * 4096 + 3 * 4096 * 11008 + 2 * 4096  # attention, SwiGLU MLP, two norms
    assert full["frozen_weights"] - two["frozen_weights"] == 30 * layer * 2  # bf16
    meta = build_meta_model(spec, ADAPTER)
    trainable = {id(p) for _, p in meta.trainable_named_parameters()}
    adapter = sum(p.numel() for p in meta.llm.model.layers[0].parameters() if id(p) in trainable)
    assert adapter > 0 and full["trainable_state"] - two["trainable_state"] == 30 * adapter * 16
    assert two["llm_activations"] * 16 == full["llm_activations"]
    assert two["vision_activations"] == full["vision_activations"]
    one_image = gpu_memory_terms(spec, ADAPTER, 2, 256, images=1)
    assert one_image["vision_activations"] * 2 == full["vision_activations"]
    assert estimate_gpu_memory_gib(spec, ADAPTER, 2, 256) == round(sum(full.values()) / 2**30, 2)
    with pytest.raises(ValueError, match="33"):
        gpu_memory_terms(spec, ADAPTER, 2, 256, llm_layers=33)


def _optimizer_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of the optimiser's state tensors (AdamW: two fp32 moments per trainable value)."""
    return sum(
        t.numel() * t.element_size()
        for state in optimizer.state.values()
        for t in state.values()
        if torch.is_tensor(t)
    )


@pytest.mark.slow
@pytest.mark.parametrize("quantization", ["none", "nf4"], ids=["bf16", "nf4"])
def test_real_width_step_generate_and_checkpoint(weights, quantization, tmp_path):
    """The 7B run's code path at LLaMA-2 width: load, step, generate, checkpoint round trip.

    Memory (host, CPU): the memory model of ``ablate.model.sizing`` applied to this very model
    (``llm_layers=2``, the real batch: 2 samples of ``seq_len`` = the assembled length, 1 image)
    without its fixed 1 GiB CUDA context, i.e. frozen weights + trainable state (16 B per
    parameter) + LLM and ViT activations + fp32 logits, is compared with the measured peak of a
    warm step (the second): the bytes of the loaded model's tensors (parameters, buffers, NF4
    quantisation state) and of the AdamW moments (counted, because the resident set of the
    loaded model also holds loader leftovers such as the pages of the bf16 safetensors file read
    while quantising) plus the rise of the resident
    set's high-water mark over the forward, backward and optimiser step above its level at the
    start of the step (every weight page already resident, freed heap trimmed, tensors of 1 MiB
    or more in their own mappings: see ``real_width.PeakRss``). Both sides hold the grads and
    AdamW moments; neither holds the CUDA context, the libraries or transient workspace.
    """
    from ablate.model.build import build_multimodal_model
    from ablate.model.sizing import GIB, gpu_memory_terms
    from ablate.train.checkpoint import TrainPosition, load_checkpoint, save_checkpoint

    spec = _spec(weights, quantization)
    rss_base = rw.release_free_memory()
    t0 = time.perf_counter()
    model = build_multimodal_model(spec, ADAPTER)
    build_s = time.perf_counter() - t0
    _check_real_shapes(model, quantization)
    batches = rw.encode_batches(model)
    assert min(batches.lengths) > 150  # real-length QCM-ALE prompts and targets

    frozen = _frozen_tensors(model)
    before = _fingerprints(frozen)
    params = model.trainable_named_parameters()
    ups = {n: p for n, p in params if ".up." in n}
    assert ups and all(not p.any() for p in ups.values())  # identity at init
    optimizer = torch.optim.AdamW([p for _, p in params], lr=1e-3)
    model.train()
    # a warm-up step first: the measured one then finds every weight page resident and the AdamW
    # moments allocated (counted below), so page-ins and first-touch allocations do not add noise
    # (the cold step's rise varied by ~600 MiB in a full slow run)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        warm = model(**batches.train)
    warm.loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    del warm
    with rw.PeakRss() as mem:
        wall, cpu = time.perf_counter(), time.process_time()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(**batches.train)
        out.loss.backward()
        optimizer.step()
        step_s, step_cpu_s = time.perf_counter() - wall, time.process_time() - cpu
    loss, seq_len = float(out.loss.detach()), out.logits.shape[1]
    del out
    optimizer.zero_grad(set_to_none=True)

    assert torch.isfinite(torch.tensor(loss))
    assert _fingerprints(frozen) == before  # no frozen weight of the LLM or the ViT moved
    assert all(p.any() for p in ups.values())  # every up-projection (LLM and ViT) trained
    assert all(p.requires_grad for _, p in params)

    model.eval()
    t0 = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        texts = model.generate(**batches.prompts, max_new_tokens=3, temperature=0)
    generate_s = time.perf_counter() - t0
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)

    trained = model.trainable_state_dict()
    position = TrainPosition(epoch=0, batch_in_epoch=1, step=1)
    save_checkpoint(
        tmp_path, trainable=trained, optimizer=optimizer.state_dict(), position=position
    )
    payload = load_checkpoint(tmp_path)
    assert payload is not None and payload["position"] == position
    t0 = time.perf_counter()
    fresh = build_multimodal_model(spec, ADAPTER)
    rebuild_s = time.perf_counter() - t0
    fresh.load_trainable_state_dict(payload["trainable"])  # strict
    restored = fresh.trainable_state_dict()
    assert restored.keys() == trained.keys()
    assert all(torch.equal(restored[n], trained[n]) for n in trained)
    resumed = torch.optim.AdamW([p for _, p in fresh.trainable_named_parameters()], lr=1e-3)
    resumed.load_state_dict(payload["optimizer"])
    fresh.eval()
    t0 = time.perf_counter()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(model(**batches.train).logits, fresh(**batches.train).logits)
    compare_s = time.perf_counter() - t0

    images = int(batches.train["has_image"].sum())
    terms = gpu_memory_terms(
        spec, ADAPTER, len(batches.lengths), seq_len, images=images, llm_layers=LLM_LAYERS
    )
    estimate = (sum(terms.values()) - terms["cuda_context"]) / MIB
    weights_mib = _model_bytes(model) / MIB
    moments_mib = _optimizer_bytes(optimizer) / MIB
    step_rise = mem.peak - mem.start
    measured = weights_mib + moments_mib + step_rise
    figures = {
        "variant": "nf4" if quantization == "nf4" else "bf16",
        "build_s": round(build_s, 1),
        "step_s": round(step_s, 1),
        "step_cpu_s": round(step_cpu_s, 1),
        "generate_s": round(generate_s, 1),
        "rebuild_s": round(rebuild_s, 1),
        "compare_logits_s": round(compare_s, 1),
        "seq_len": seq_len,
        "loss": round(loss, 3),
        "generated": texts,
        "measured_mib": round(measured),
        "measured_weights_mib": round(weights_mib),
        "measured_step_rise_mib": round(step_rise),
        "measured_adam_moments_mib": round(moments_mib),
        "step_major_faults": mem.major_faults,
        "rss_peak_above_imports_mib": round(mem.peak - rss_base),
        "estimate_mib": round(estimate),
        "estimate_terms_mib": {k: round(v / MIB) for k, v in terms.items()},
        "estimate_full_gib": round(sum(terms.values()) / GIB, 2),
        "error": round(estimate / measured - 1, 3),
    }
    print(json.dumps(figures))
    assert abs(estimate / measured - 1) <= TOLERANCE, figures
