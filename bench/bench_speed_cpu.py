"""What the CPU can show of the paper run's speed: padding, generated tokens, host syncs, batching.

Real tokenizer (the LLaMA-2 tokenizer shipped in ``ablate/assets``) and real ScienceQA lengths
(``--data``, default the shared sample), in the seed's layout (markers, 6 visual tokens).

1. Computed tokens / useful tokens of the paper profile's windows (1 x 32, the seed's order) cut
   into micro-batches of 8/16/32, padded (sorted inside the window) or packed, beside the old
   ways (length-grouped batches; padding to 512). Goal at the paper profile (packed): <= 1.05.
2. Generated tokens per question with ``eval.stop_at_answer``: the stop rule run token by token
   over the real reference answers (what a trained model emits first). Goal <= 10 (was 64).
3. Host syncs per optimiser step of the recipe's training window (tiny twins, fp16 autocast with
   the GradScaler as the paper profile, and bf16): every call that makes the host wait for the
   device (``item``, ``bool``, ``tolist``, ``nonzero``, boolean indexing) counted, except
   torch.optim's reads of its host-side step counters. Goal <= 1.
4. ``--width-real``: LLaMA-2-7B width (4096) at 2 of its 32 layers, bf16 autocast, text-only
   samples of real length: per-sample step time at micro-batch 8 vs 1, packed vs padded
   (minutes on two cores).

    python bench/bench_speed_cpu.py [--width-real] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ablate.assets import load_llama2_tokenizer  # noqa: E402
from ablate.data.encoding import build_layout  # noqa: E402
from ablate.data.scienceqa import load_scienceqa  # noqa: E402
from ablate.evaluation.generate import _has_answer  # noqa: E402
from ablate.model.batch_layout import SampleTokens, build_batch_layout  # noqa: E402
from ablate.train.batches import encode_problems, epoch_batches  # noqa: E402
from ablate.train.spec import TrainSpec  # noqa: E402
from ablate.train.windows import epoch_windows, split_window  # noqa: E402

SAMPLE = REPO.parent / "shared" / "data" / "scienceqa-sample"
N_VISUAL = 6


def _examples(data: str):
    tokenizer = load_llama2_tokenizer()
    problems = load_scienceqa(data, "train", image_placeholder=True)
    layout = build_layout(tokenizer, n_visual=N_VISUAL, max_seq_len=512)
    examples, _ = encode_problems(problems, tokenizer, "qcm-ale", layout)
    return tokenizer, [e for e in examples if any(x != -100 for x in e.labels)]


def _ratio(examples, groups, layout: str) -> float:
    computed = useful = 0
    for idx in groups:
        samples = [
            SampleTokens(examples[i].input_ids, examples[i].labels, examples[i].visual_at,
                         examples[i].has_image)
            for i in idx
        ]  # fmt: skip
        batch = build_batch_layout(samples, N_VISUAL, 0, layout)  # type: ignore[arg-type]
        computed += batch.computed_tokens
        useful += batch.useful_tokens
    return computed / useful


def padding(examples) -> None:
    lengths = [len(e.input_ids) + N_VISUAL * e.has_image for e in examples]
    paper = TrainSpec(batch_size=1, accumulation=32)
    windows = epoch_windows(lengths, paper, seed=0, epoch=0)
    print(f"# 1. computed / useful tokens ({len(examples)} samples, mean length "
          f"{statistics.mean(lengths):.0f}, {len(windows)} windows of 32)")  # fmt: skip
    print(f"  padded to 512 (fixed length):          {512 * len(lengths) / sum(lengths):.3f}")
    for micro in (8, 16, 32):
        grouped = epoch_batches(lengths, micro, seed=0, epoch=0, length_grouped=True)
        cut = [mb for w in windows for mb in split_window(w, lengths, micro)]
        grouped_pad = _ratio(examples, grouped, "pad")
        print(f"  micro-batch {micro:2d}: length-grouped padded {grouped_pad:.3f}"
              f" | window-sorted padded {_ratio(examples, cut, 'pad'):.3f}"
              f" | packed {_ratio(examples, cut, 'pack'):.3f}")  # fmt: skip


def generated_tokens(tokenizer, examples) -> None:
    counts = []
    for e in examples:
        target = [t for t in e.labels if t != -100]
        n = len(target)
        for k in range(1, len(target) + 1):
            if _has_answer(tokenizer.decode(target[:k], skip_special_tokens=True)):
                n = k
                break
        counts.append(min(n, 64))
    print(f"# 2. generated tokens per question with stop_at_answer: mean "
          f"{statistics.mean(counts):.2f}, max {max(counts)} (without: up to 64)")  # fmt: skip


class SyncCounter(TorchFunctionMode):
    """Counts calls that make the host wait for the device's results (at the torch API level).

    ``item``, ``bool``, ``float``/``int``, ``tolist``, ``nonzero``, ``masked_select``, ``unique``
    and indexing with a boolean tensor: on a GPU each is a device-to-host copy the host waits for.
    """

    SYNC_NAMES = frozenset(
        {"item", "tolist", "__bool__", "__float__", "__int__", "nonzero", "masked_select",
         "unique"}
    )  # fmt: skip

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.seen: dict[str, int] = {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        hit = name in self.SYNC_NAMES
        if name == "__getitem__" and len(args) > 1:
            index = args[1] if isinstance(args[1], tuple) else (args[1],)
            hit = any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in index)
        if hit and not _from_optimizer_state():
            self.count += 1
            self.seen[name] = self.seen.get(name, 0) + 1
        return func(*args, **(kwargs or {}))


def _from_optimizer_state() -> bool:
    """Whether the call comes from torch.optim, whose ``step`` counters live on the host (their
    ``item()`` reads host memory, never waits for the device)."""
    frame = sys._getframe(2)
    while frame is not None:
        if "torch/optim/" in frame.f_code.co_filename:
            return True
        frame = frame.f_back
    return False


def host_syncs() -> None:
    import importlib.util
    import os

    os.environ.setdefault("ABLATE_TWIN_DIR", tempfile.mkdtemp())
    os.environ.setdefault("ABLATE_CACHE_DIR", tempfile.mkdtemp())
    # the recipe tests' small tiny spec and job context
    path = REPO / "tests" / "train" / "conftest.py"
    module_spec = importlib.util.spec_from_file_location("train_conftest", path)
    helpers = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(helpers)
    build_ctx, build_tiny_spec = helpers.build_ctx, helpers.build_tiny_spec

    from ablate.jobs.mmt_recipe import MmtRecipe
    from ablate.train.throughput import Throughput

    print("# 3. host syncs per optimiser step (recipe window, tiny twins, micro-batch 2 of 4)")
    for autocast in ("fp16", "bf16"):
        spec = build_tiny_spec(
            model={"precision": autocast},
            train={"autocast": autocast, "micro_batch": 2, "pack": True},
        )
        recipe = MmtRecipe(spec, build_ctx(Path(tempfile.mkdtemp())))
        recipe.setup()
        lengths = [len(e.input_ids) for e in recipe.data.train_examples]
        windows = epoch_windows(lengths, recipe.cfg.train, seed=0, epoch=0)
        throughput = Throughput("cpu", recipe.model)
        counts = []
        for mbs in list(recipe._window_batches(windows, 0, 0))[:3]:
            counter = SyncCounter()
            with counter:
                recipe._train_window(mbs, sum(m["layout"].n_samples for m in mbs), throughput)
            counts.append(counter.count)
        print(f"  {autocast}: {counts} per step, by call: {counter.seen}")


def width_real(repeats: int) -> None:
    sys.path.insert(0, str(REPO / "tests" / "model"))
    from real_width import IMAGE_QUESTION, TEXT_QUESTION, write_llm, write_vision

    from ablate.model.adapters import BottleneckConfig
    from ablate.model.build import build_multimodal_model
    from ablate.model.spec import ModelSpec

    scratch = Path(tempfile.mkdtemp())
    spec = ModelSpec(
        llm="llama2-7b", vision="diht-vit-l14-336", precision="bf16",
        llm_path=str(write_llm(scratch / "llm", layers=2)),
        vision_path=str(write_vision(scratch / "diht.pt")),
    )  # fmt: skip
    model = build_multimodal_model(spec, BottleneckConfig(dim=16, groups=2), "cpu").train()
    tok = model.tokenizer
    samples = []
    for prompt, answer in (IMAGE_QUESTION, TEXT_QUESTION) * 4:
        p = tok(prompt).input_ids
        a = tok(answer, add_special_tokens=False).input_ids + [tok.eos_token_id]
        samples.append(SampleTokens(p + a, [-100] * len(p) + a, 1, False))
    torch.set_num_threads(2)
    print("# 4. width-real (4096 wide, 2 of 32 layers, bf16 autocast), text-only, per sample")
    for layout in ("pad", "pack"):
        for micro in (1, 8):
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                for start in range(0, 8, micro):
                    batch = build_batch_layout(samples[start : start + micro], N_VISUAL,
                                               tok.pad_token_id, layout)  # fmt: skip
                    with torch.autocast("cpu", dtype=torch.bfloat16):
                        out = model.forward_layout(batch)
                    out.sample_losses.sum().backward()
                times.append((time.perf_counter() - t0) / 8)
            print(f"  {layout} micro-batch {micro}: {statistics.median(times):.2f} s/sample "
                  f"(min {min(times):.2f}, max {max(times):.2f}, {repeats} repeats)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(SAMPLE))
    parser.add_argument("--width-real", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    tokenizer, examples = _examples(args.data)
    padding(examples)
    generated_tokens(tokenizer, examples)
    host_syncs()
    if args.width_real:
        width_real(args.repeats)


if __name__ == "__main__":
    main()
