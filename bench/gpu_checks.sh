#!/usr/bin/env bash
# Every GPU check and benchmark in one call (a GPU machine; CI has none and skips them):
#   bench/gpu_checks.sh [OUT_DIR]
# 1. the GPU tests: real-shape LLaMA-2-7B (NF4) + DIHT ViT-L/14-336, random weights, one step;
# 2. bench/bench_train.py: training samples/s and peak memory (bf16 and NF4, micro-batch 1-16),
#    evaluation time of 4,241 questions, and ../shared/bench/gpu_anchor.py side by side.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-bench-out}"
mkdir -p "$out"
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'"
python -m pytest -q -m gpu tests/model/test_model_gpu.py 2>&1 | tee "$out/gpu_tests.log"
python bench/bench_train.py --out "$out/bench_train.json" 2>&1 | tee "$out/bench_train.log"
