"""What a run will cost before it runs: GPU-hours from the FLOP model, calibrated by past runs.

A researcher picks ablation rows by what a table costs, so ``ablate plan`` shows an estimate per
run (``gpu_h``). Training: samples x LLM tokens x 4 N (frozen backbone: forward 2N, backward to
the activations 2N) plus 4 x the ViT's parameters per image token, at an assumed model FLOP
utilisation on the assumed GPU's dense 16-bit peak. Evaluation is decode-bound: every generated
token re-reads the frozen weights once per batch step. The assumptions are named constants;
every run records its own ``speed/tflops_per_s`` and ``speed/mfu`` to check them against, and
:mod:`ablate.train.calibration` scales the estimate by what earlier runs measured.

What a run cost is :func:`measured_hours` (the report's ``GPU-h`` column and the calibration
both read it). Torch-free: reports and plans import this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PEAK_TFLOPS = {  # dense bf16/fp16 tensor-core peaks, by a substring of the device name
    "H200": 989.4,
    "H100": 989.4,
    "A100": 312.0,
    "L40S": 362.1,
    "A10G": 125.0,
    "L4": 121.0,
    "4090": 165.2,
}

SCIENCEQA_SPLITS = {"train": 12_726, "val": 4_241, "test": 4_241, "minival": 424}
MEAN_LLM_TOKENS = 314
"""Mean training sequence (QCM-ALE with lecture and solution, 6 visual tokens, LLaMA-2 tokens)."""
IMAGE_SHARE = 0.49
"""Share of ScienceQA questions with an image."""
ASSUMED_GPU = "H100"
ASSUMED_MFU = 0.35
"""Packed, fused, bf16/fp16 frozen-backbone training on one H100 (peers report 0.3-0.45)."""
HBM_TB_PER_S = 3.35
DECODE_TOKENS_PER_QUESTION = 7
"""Generation stops at "The answer is X." (bench/bench_speed_cpu.py: 5 tokens + EOS margin)."""


def peak_tflops(device_name: str) -> float | None:
    """The dense 16-bit peak of a GPU by name, or None when unknown."""
    for key, value in PEAK_TFLOPS.items():
        if key in device_name:
            return value
    return None


def measured_hours(metrics: Mapping[str, float], duration_s: float | None = None) -> float | None:
    """The hours one run held its device: training plus evaluation wall time.

    ``time/train_s`` (per-epoch validation and checkpoints included) plus ``time/eval_s`` (the
    final passes), as the FLOP model counts them; model loading is left out. A job that records
    no such times (``linear-fit``) counts its attempt's wall time (``duration_s``). ``None`` when
    neither was recorded.
    """
    train, evaluation = metrics.get("time/train_s"), metrics.get("time/eval_s")
    if train is not None and evaluation is not None:
        seconds: float | None = float(train) + float(evaluation)
    else:
        seconds = metrics.get("time/total_s", duration_s)
    if seconds is None or not seconds > 0:
        return None
    return float(seconds) / 3600


def _split_size(data: Any, split: str) -> int:
    if data.dataset == "synthetic":
        return int(getattr(data.synthetic, f"n_{split}"))
    return SCIENCEQA_SPLITS[split]


def estimate_gpu_hours(cfg: Any, counts: Mapping[str, int], mfu: float = ASSUMED_MFU) -> float:
    """GPU-hours of one ``mmt`` run: training plus per-epoch validation plus the final passes.

    Args:
        cfg: the run's :class:`~ablate.jobs.mmt.MmtConfig`.
        counts: parameter counts of the model (``ablate.model.sizing`` meta-device counts:
            ``llm_linear``, ``vision``, ``vision_tokens``, ``llm``).
        mfu: the model FLOP utilisation to assume.
    """
    train, data, ev = cfg.train, cfg.data, cfg.eval
    peak = PEAK_TFLOPS[ASSUMED_GPU] * 1e12
    samples = train.epochs * _split_size(data, "train")
    flops_per_sample = 4 * MEAN_LLM_TOKENS * counts["llm_linear"]
    flops_per_sample += 4 * IMAGE_SHARE * counts["vision_tokens"] * counts["vision"]
    train_s = samples * flops_per_sample / (peak * mfu)
    per_epoch = train.eval_every_epoch_max_questions or _split_size(data, "val")
    questions = _split_size(data, "val") + _split_size(data, "test")
    if train.eval_every_epoch:
        questions += (train.epochs - 1) * per_epoch
    tokens = min(ev.max_new_tokens, DECODE_TOKENS_PER_QUESTION)
    weight_bytes = counts["llm"] * (0.55 if cfg.model.quantization != "none" else 2.0)
    decode_s = questions / ev.batch_size * tokens * weight_bytes / (HBM_TB_PER_S * 1e12)
    prefill_s = questions * flops_per_sample / 2 / (peak * mfu)  # forward only, ~same length
    return (train_s + decode_s + prefill_s) / 3600
