"""Helpers of the real-width smoke test: random weights in the real formats, inputs, host memory.

The LLM is LLaMA-2-7B's width (``llm_config("llama2-7b")``) at a few of its 32 decoder layers,
written with ``save_pretrained`` (safetensors) beside the real LLaMA-2 tokenizer shipped in
``ablate.assets``; the vision tower is the full DIHT ViT-L/14-336 (open_clip ``ViT-L-14-336``,
GELU), its whole open_clip state dict (text tower included) saved with ``torch.save`` as DIHT's
checkpoint is. Both are then loaded back by the real loaders.
"""

from __future__ import annotations

import ctypes
import re
import resource
from dataclasses import dataclass
from pathlib import Path

import torch

LLM_PRESET = "llama2-7b"
VISION_PRESET = "diht-vit-l14-336"
SEED = 20240725

# Two ScienceQA-style QCM-ALE pairs of real length (lecture and solution in the target).
IMAGE_QUESTION = (
    "Question: Which of these states is farthest north?\nContext: N/A\n"
    "Options: (A) West Virginia (B) Louisiana (C) Arizona (D) Oklahoma\nResponse:",
    " The answer is A. BECAUSE: Maps have four cardinal directions, or main directions. Those "
    "directions are north, south, east, and west. A compass rose is a set of arrows that point "
    "to the cardinal directions. A compass rose usually shows only the first letter of each "
    "cardinal direction. The north arrow points to the North Pole. On most maps, north is at the "
    "top of the map. To find the answer, look at the compass rose. Look at which way the north "
    "arrow is pointing. West Virginia is farthest north.",
)
TEXT_QUESTION = (
    "Question: Which tense does the sentence use? Mona will print her name with care.\n"
    "Context: N/A\nOptions: (A) present tense (B) future tense (C) past tense\nResponse:",
    " The answer is B. BECAUSE: Present tense verbs tell you about something that is happening "
    "now. Most present-tense verbs are regular. They have no ending, or they end in -s or -es. "
    "Two verbs are irregular in the present tense, to be and to have. You must remember their "
    "forms. Past tense verbs tell you about something that has already happened. Most "
    "past-tense verbs are regular. They end in -ed. Some verbs are irregular in the past tense. "
    "You must remember their past-tense forms. Future tense verbs tell you about something that "
    "is going to happen. All future-tense verbs use the word will. The sentence is in future "
    "tense. You can tell because it uses will before the main verb, print. The verb tells you "
    "about something that is going to happen.",
)


def write_llm(out: Path, layers: int = 2, seed: int = SEED) -> Path:
    """LLaMA-2-7B's width at ``layers`` decoder layers, random bf16 weights, and the tokenizer.

    The model is built on the meta device and its tensors are drawn once, directly in bf16 (no
    fp32 copy of ~2.7 GB, no second init pass: ~6 s instead of ~30 s on two cores): linear and
    embedding weights N(0, initializer_range), norm weights 1, as ``_init_weights`` does. Written
    with ``save_pretrained`` (safetensors) as a converted LLaMA-2 checkpoint is, beside the real
    LLaMA-2 tokenizer (pad = unk).
    """
    from transformers import LlamaForCausalLM

    from ablate.assets import load_llama2_tokenizer
    from ablate.model.llm import llm_config

    config = llm_config(LLM_PRESET)
    config.num_hidden_layers = layers
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    model.to(torch.bfloat16).to_empty(device="cpu")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            if param.ndim == 1:  # RMSNorm weights
                param.fill_(1.0)
            else:
                param.normal_(0.0, config.initializer_range, generator=generator)
    model.save_pretrained(out, safe_serialization=True)  # buffers (rotary) are not saved
    load_llama2_tokenizer().save_pretrained(out)
    return out


def write_vision(path: Path, seed: int = SEED) -> Path:
    """The full open_clip ViT-L-14-336 (GELU) state dict, random init, saved as DIHT's file."""
    from ablate.model.vision import get_vision_preset, open_clip_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        clip = open_clip_model(get_vision_preset(VISION_PRESET))
    torch.save(clip.state_dict(), path)
    del clip
    return path


@dataclass
class Batches:
    """The training batch (right-padded) and the generation batch (left-padded) of the prompts."""

    train: dict
    prompts: dict
    lengths: list[int]


def encode_batches(model, seed: int = SEED) -> Batches:
    """One image question (non-square random PIL image) and one text-only, as training sees them."""
    import numpy as np
    from PIL import Image

    from ablate.data.encoding import build_layout, encode_pair, encode_prompt
    from ablate.data.prompts import PromptPair
    from ablate.train.batches import Example, collate_prompts, collate_train

    tokenizer = model.tokenizer
    layout = build_layout(tokenizer, n_visual=len(model.taps), max_seq_len=512)
    pixels = np.random.default_rng(seed).integers(0, 256, (240, 560, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)  # 560 x 240: squeezed to 336 x 336 by the transform
    examples = []
    for (prompt, target), picture in ((IMAGE_QUESTION, image), (TEXT_QUESTION, None)):
        has_image = picture is not None
        encoded = encode_pair(tokenizer, PromptPair(prompt, target), layout, has_image)
        prompt_ids, _ = encode_prompt(tokenizer, prompt, layout, has_image)
        examples.append(
            Example(
                pid=str(len(examples)),
                input_ids=tuple(encoded.input_ids),
                labels=tuple(encoded.labels),
                prompt_ids=tuple(prompt_ids),
                visual_at=encoded.visual_at,
                problem=picture,
                has_image=has_image,
                n_choices=4,
            )
        )
    load = model.image_transform  # the "problem" of these examples is the PIL image itself
    pad = tokenizer.pad_token_id
    lengths = [len(e.input_ids) for e in examples]
    train, prompts = collate_train(examples, pad, load), collate_prompts(examples, pad, load)
    return Batches(train, prompts, lengths)


# ---------------------------------------------------------------------------- host memory
def _status_mib(key: str) -> float:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{key}:\s+(\d+) kB", text, re.M).group(1)) / 1024


def rss_mib() -> float:
    """Resident set size of this process now (MiB)."""
    return _status_mib("VmRSS")


def release_free_memory() -> float:
    """Collect garbage and hand glibc's free heap pages back to the kernel; the RSS after (MiB).

    Without ``malloc_trim`` the RSS keeps memory freed by earlier work (the fp32 vision tower
    that was cast to bf16, the previous variant's model), which is no part of a step.
    """
    import gc

    gc.collect()
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
    return rss_mib()


M_MMAP_THRESHOLD = -3  # glibc mallopt parameter
MMAP_THRESHOLD = 1 << 20


def _libc():
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc
        return None


class PeakRss:
    """Peak RSS over a ``with`` block (MiB): resets the kernel's high-water mark on entry.

    Linux only (``/proc/self/clear_refs`` 5 resets ``VmHWM``, which ``ru_maxrss`` also reads).
    Inside the block glibc serves every allocation of 1 MiB or more with its own ``mmap``
    (``mallopt(M_MMAP_THRESHOLD)``, which also stops glibc from raising that threshold as it
    does by default), so freed tensors leave the resident set at once and the peak is that of
    the live tensors, not of heap fragmentation (which varied it by ~300 MiB between runs).
    ``major_faults`` counts pages read back from disk inside the block (evicted weight pages
    faulted in again would count in the peak too; it should be ~0).
    """

    def __enter__(self) -> PeakRss:
        libc = _libc()
        if libc is not None:
            libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        self.start = release_free_memory()
        self._faults = resource.getrusage(resource.RUSAGE_SELF).ru_majflt
        Path("/proc/self/clear_refs").write_text("5")
        return self

    def __exit__(self, *exc: object) -> None:
        self.peak = _status_mib("VmHWM")
        self.major_faults = resource.getrusage(resource.RUSAGE_SELF).ru_majflt - self._faults
