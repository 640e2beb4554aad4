"""Training and evaluation throughput of the real-shape 7B-lite-diht-BA run (random weights).

What it measures, on one GPU, through the same code the ``mmt`` job runs:
- training samples/s and peak GPU memory of DIHT ViT-L/14-336 + LLaMA-2-7B (bf16, and NF4 frozen
  LLM) with the Bottleneck Adapter (dim 16, groups 2, before attention, both towers), at
  ScienceQA's real prompt lengths (QCM-ALE, length-grouped batches, no padding to 512), over a
  range of micro-batch sizes; the effective batch 32 comes from accumulation and does not change
  samples/s;
- evaluation time of 4,241 test questions (batched generation with KV cache, 64 new tokens max);
- the naive anchor, ``../shared/bench/gpu_anchor.py``, in the same call on the same machine.

Random weights: a LLaMA-2-7B-shaped ``save_pretrained`` directory and a DIHT-shaped open_clip
state dict are written to a scratch folder once and loaded through the real loading code
(``model.llm_path`` / ``model.vision_path``), so quantisation happens exactly as in a real run.
Prompt lengths come from real ScienceQA problems (``--data``, default the shared sample),
tokenised by the LLaMA-2 tokenizer shipped in ``ablate/assets`` (the twins' tokenizer: real
lengths) or by ``--tokenizer`` when given, in the seed's layout (markers, 6 visual tokens, u_m).

    python bench/bench_train.py --out bench_train.json          # GPU
    python bench/bench_train.py --tiny --steps 3                # CPU smoke test of this script

Prints one JSON line per configuration and writes them all to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ablate.data.image_cache import ImageCache  # noqa: E402
from ablate.data.scienceqa import load_scienceqa  # noqa: E402
from ablate.evaluation.spec import EvalSpec  # noqa: E402
from ablate.model.adapters import BottleneckConfig  # noqa: E402
from ablate.model.spec import ModelSpec  # noqa: E402
from ablate.train.batches import (  # noqa: E402
    collate_layout,
    encode_problems,
    epoch_batches,
)
from ablate.train.optim import build_optimizer  # noqa: E402
from ablate.train.spec import TrainSpec  # noqa: E402

SAMPLE = REPO.parent / "shared" / "data" / "scienceqa-sample"
ANCHOR = REPO.parent / "shared" / "bench" / "gpu_anchor.py"
PAPER_SAMPLES = 254_520  # 20 epochs x 12,726 training questions
TEST_QUESTIONS = 4_241


def write_random_backbones(scratch: Path) -> tuple[str, str]:
    """A random LLaMA-2-7B-shaped transformers dir and a random DIHT ViT-L/14-336 state dict."""
    import open_clip
    from transformers import LlamaForCausalLM

    from ablate.model.llm import llm_config
    from ablate.model.twins import build_twin_tokenizer

    llm_dir, vision_file = scratch / "llama2-7b-random", scratch / "diht-random.pth"
    if not (llm_dir / "config.json").exists():
        torch.manual_seed(0)
        torch.set_default_dtype(torch.bfloat16)
        with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
            model = LlamaForCausalLM(llm_config("llama2-7b"))
        torch.set_default_dtype(torch.float32)
        model.save_pretrained(llm_dir, safe_serialization=True)
        # any tokenizer with ids < 32000 gives the same shapes; the twin's is local
        build_twin_tokenizer().save_pretrained(llm_dir)
        del model
        torch.cuda.empty_cache()
    if not vision_file.exists():
        clip = open_clip.create_model("ViT-L-14-336", pretrained=None)
        torch.save(clip.state_dict(), vision_file)
    return str(llm_dir), str(vision_file)


def model_spec(args: argparse.Namespace, quantization: str, paths: tuple[str, str]) -> ModelSpec:
    """The model section of the benchmarked run."""
    if args.tiny:
        return ModelSpec(llm="tiny-llama2", vision="tiny-diht", precision="fp32")
    return ModelSpec(
        llm="llama2-7b",
        vision="diht-vit-l14-336",
        llm_path=paths[0],
        vision_path=paths[1],
        precision="bf16",
        quantization=quantization,
    )


def train_throughput(model, examples, batch_size, steps, device, load_image, autocast, layout):
    """Samples/s, tokens and peak memory of forward+backward+AdamW at ``batch_size``.

    Micro-batches are length-grouped and laid out as the recipe does (``pad``: right-padded,
    plain causal; ``pack``: one row, block-diagonal attention).
    """
    spec = TrainSpec(batch_size=batch_size, accumulation=1, autocast="bf16")
    optimizer = build_optimizer(model.trainable_named_parameters(), spec)
    lengths = [len(e.input_ids) for e in examples]
    batches = epoch_batches(lengths, batch_size, seed=0, epoch=0, length_grouped=True)
    pad = model.tokenizer.pad_token_id
    warm = 3
    batches = (batches * (1 + (steps + warm) // max(len(batches), 1)))[: steps + warm]
    model.train()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    samples, tokens, computed, start = 0, 0, 0, None
    for i, idx in enumerate(batches):
        if i == warm:
            if device == "cuda":
                torch.cuda.synchronize()
            start, samples, tokens, computed = time.perf_counter(), 0, 0, 0
        batch = collate_layout([examples[j] for j in idx], pad, load_image, len(model.taps), layout)
        laid = batch["layout"].to(device, non_blocking=True)
        images = batch["images"].to(device) if batch["images"] is not None else None
        with autocast():
            loss = model.forward_layout(laid, images).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        samples += len(idx)
        tokens += laid.useful_tokens
        computed += laid.computed_tokens
    if device == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
    del optimizer
    return samples / elapsed, tokens / samples, computed / max(tokens, 1), peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(SAMPLE), help="ScienceQA folder (official layout)")
    parser.add_argument("--scratch", default="/tmp/ablate-bench", help="random backbones go here")
    parser.add_argument("--quant", default="bf16,nf4", help="comma list of none|bf16 and nf4")
    parser.add_argument("--batch-sizes", default="1,4,8,16")
    parser.add_argument("--steps", type=int, default=20, help="timed micro-batches per config")
    parser.add_argument("--eval-questions", type=int, default=TEST_QUESTIONS)
    parser.add_argument("--eval-batch", type=int, default=64)
    parser.add_argument("--no-anchor", action="store_true")
    parser.add_argument("--grad-ckpt", action="store_true", help="gradient checkpointing on")
    parser.add_argument("--layouts", default="pack,pad", help="comma list of pack and pad")
    parser.add_argument(
        "--tokenizer",
        default=None,
        help="a local tokenizer dir (default: the shipped LLaMA-2 tokenizer, real token counts)",
    )
    parser.add_argument("--tiny", action="store_true", help="tiny twins on CPU (smoke test)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    from ablate.evaluation.generate import evaluate_split
    from ablate.model.build import build_multimodal_model

    device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
    if device == "cpu":
        torch.set_num_threads(1)  # tiny matrices: one thread is fastest (see TrainSpec.cpu_threads)
    torch.backends.cuda.matmul.allow_tf32 = True
    results: list[dict] = []

    def emit(row: dict) -> None:
        row = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu", **row}
        results.append(row)
        print(json.dumps(row), flush=True)

    if device == "cuda" and not args.no_anchor and ANCHOR.exists():
        proc = subprocess.run([sys.executable, str(ANCHOR)], capture_output=True, text=True)
        for line in proc.stdout.splitlines():
            if line.startswith("{"):
                emit({"what": "anchor", **json.loads(line)})
        if proc.returncode:
            emit({"what": "anchor", "error": proc.stderr[-2000:]})

    Path(args.scratch).mkdir(parents=True, exist_ok=True)
    paths = ("", "") if args.tiny else write_random_backbones(Path(args.scratch))
    problems = load_scienceqa(args.data, "train", image_placeholder=True)
    adapter = BottleneckConfig(dim=16, groups=2)
    for quant in args.quant.split(","):
        quantization = "nf4" if quant == "nf4" else "none"
        t0 = time.perf_counter()
        model = build_multimodal_model(model_spec(args, quantization, paths), adapter, device)
        build_s = time.perf_counter() - t0
        if args.grad_ckpt:
            model.enable_gradient_checkpointing()
        if args.tokenizer:
            from transformers import AutoTokenizer

            model.tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
            if model.tokenizer.pad_token is None:
                model.tokenizer.pad_token = model.tokenizer.unk_token or model.tokenizer.eos_token
        from ablate.data.encoding import build_layout

        layout = build_layout(model.tokenizer, n_visual=len(model.taps), max_seq_len=512)
        examples, stats = encode_problems(problems, model.tokenizer, "qcm-ale", layout)
        load_image = ImageCache(model.image_resize)  # uint8, normalised on the device
        dtype = torch.bfloat16 if device == "cuda" else None

        def autocast(dtype=dtype):
            if dtype is None:
                return torch.autocast("cpu", enabled=False)
            return torch.autocast("cuda", dtype=dtype)

        configs = [
            (lay, int(b)) for lay in args.layouts.split(",") for b in args.batch_sizes.split(",")
        ]
        for lay, bs in configs:
            try:
                sps, mean_len, ratio, peak = train_throughput(
                    model, examples, bs, args.steps, device, load_image, autocast, lay
                )
            except torch.OutOfMemoryError:
                emit({"what": "train", "quant": quant, "layout": lay, "batch_size": bs,
                      "error": "OOM"})  # fmt: skip
                torch.cuda.empty_cache()
                continue
            emit(
                {
                    "what": "train",
                    "quant": quant,
                    "layout": lay,
                    "batch_size": bs,
                    "samples_per_s": round(sps, 2),
                    "mean_tokens": round(mean_len, 1),
                    "computed_per_useful_token": round(ratio, 3),
                    "peak_gib": round(peak, 2),
                    "paper_recipe_gpu_h": round(PAPER_SAMPLES / sps / 3600, 2),
                    "truncated": stats.truncated,
                    "grad_ckpt": args.grad_ckpt,
                    "build_s": round(build_s, 1),
                }
            )
            if device == "cuda":
                torch.cuda.empty_cache()
        n = args.eval_questions
        reps = (problems * (1 + n // len(problems)))[:n]
        from dataclasses import replace

        eval_problems = [replace(p, pid=f"{p.pid}-{i}") for i, p in enumerate(reps)]
        eval_examples, _ = encode_problems(eval_problems, model.tokenizer, "qcm-ale", layout)
        spec = EvalSpec(batch_size=args.eval_batch, max_new_tokens=64)
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        result = evaluate_split(
            model, eval_problems, eval_examples, spec, split="bench", seed=0, device=device,
            load_image=load_image, autocast=autocast,
        )  # fmt: skip
        emit(
            {
                "what": "eval",
                "quant": quant,
                "questions": n,
                "batch_size": args.eval_batch,
                "seconds": round(result.seconds, 1),
                "questions_per_s": round(n / result.seconds, 1),
                "tokens_per_question": round(result.generated_tokens / n, 1),
                "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)
                if device == "cuda"
                else None,
            }
        )
        del model
        if device == "cuda":
            torch.cuda.empty_cache()
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))
    if os.environ.get("OUT"):  # the device runner brings back what is written there
        Path(os.environ["OUT"], "bench_train.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
