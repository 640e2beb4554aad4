"""The multimodal model: backbones, visual neck, modality token and adapters.

Modules, one idea each:
    spec            ModelSpec / NeckSpec and preset names (no torch)
    adapters        adapter configs by short name (no torch) and one module per method
    llm, vision     presets with real dimensions, loading of real weights, clear errors
    twins           tiny twins written once, deterministically, in the real formats
    neck            visual neck V' and modality token u_m
    placement       where adapters go (wrapping block input norms; no patched forward)
    multimodal      MultimodalModel: forward, generate, trainable state; the builder
    sizing          trainable counts on the meta device, GPU-memory estimates, plan columns
    random_weights  real shapes with random weights (benchmarks, GPU smoke test)
"""
