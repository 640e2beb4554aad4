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

import logging


class _NoOptionalKernelsNotice(logging.Filter):
    """Drops bitsandbytes's notice that the optional ``kernels`` package is not installed.

    bitsandbytes logs it at import on CPUs with AVX512-BF16 (``Failed to load CPU
    gemm_4bit_forward from kernels-community``); it names an optional speed-up that ablate does
    not use and showed up in ``ablate plan``, which only sizes models on the meta device.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "kernels-community" not in str(record.msg)


# installed before anything imports bitsandbytes (its logger is the same object once created)
logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(_NoOptionalKernelsNotice())
