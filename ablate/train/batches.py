"""ScienceQA problems to token tensors: encoding, truncation, length-grouped batches, collation.

Sequences follow the model contract: training inputs are ``[BOS, marker, prompt, target, EOS]``,
right-padded, with labels only on ``target + EOS`` (``-100`` elsewhere); generation prompts are
``[BOS, marker, prompt]``, left-padded so that every sample's next token sits in the last column.
The model itself inserts the modality token and the visual tokens (at ``visual_at``, after the
``"Image: "`` marker), and shifts the labels to match.

Layout, tokenisation and truncation are :mod:`ablate.data.encoding`'s (the seed's: markers, prompt
and target tokenised as one string, the whole LLM input cut on the right to ``max_seq_len``;
generation prompts cut on the left so the options and ``Response:`` survive); samples left without
any label token are not trained on. All three cases are counted and reported.

Length grouping: micro-batches are formed from samples of similar length (sorted inside shuffled
mega-batches, as in Hugging Face's ``LengthGroupedSampler``), so a batch is padded to its own
longest sample rather than to 512.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ablate.data.encoding import IGNORE_INDEX

MEGA_BATCH_MULTIPLIER = 50


@dataclass(frozen=True)
class Example:
    """One encoded problem.

    Attributes:
        pid: ScienceQA problem id.
        input_ids: ``[BOS, marker, prompt, target, EOS]`` after truncation (training).
        labels: same length as ``input_ids``; ``-100`` except on target and EOS tokens.
        prompt_ids: ``[BOS, marker, prompt]`` after truncation (generation).
        visual_at: where the model inserts the visual tokens, in both id lists (after BOS and
            the marker).
        problem: the ScienceQA ``Problem`` (its image is loaded lazily, at collation).
        has_image: whether the problem has an image (a text-only one gets ``has_image=False``).
        n_choices: number of answer options (for parsing and the random fallback).
    """

    pid: str
    input_ids: tuple[int, ...]
    labels: tuple[int, ...]
    prompt_ids: tuple[int, ...]
    visual_at: int
    problem: Any
    has_image: bool
    n_choices: int


@dataclass(frozen=True)
class EncodeStats:
    """What truncation did to a split."""

    n: int
    truncated: int
    """Training sequences longer than ``max_seq_len`` (cut at the tail)."""
    dropped: int
    """Training sequences with no label left after truncation (not trained on)."""
    prompts_truncated: int
    """Generation prompts longer than ``max_seq_len`` (cut on the left, after BOS)."""


def encode_problems(
    problems: Sequence[Any],
    tokenizer: Any,
    prompt_format: str,
    layout: Any,
    *,
    drop_empty_because: bool = False,
) -> tuple[list[Example], EncodeStats]:
    """Tokenise problems for training and generation.

    The truncation rules live in :mod:`ablate.data.encoding` (one implementation for every
    consumer); this adds what batching needs: pid, image path and option count.

    Args:
        problems: ScienceQA ``Problem`` records (pid, choices, image, ...).
        tokenizer: a transformers tokenizer with ``bos_token_id`` and ``eos_token_id``.
        prompt_format: the data spec's prompt name (``qcm-ale``, ``cqm-a``).
        layout: the model's :class:`~ablate.data.encoding.SequenceLayout` (markers, visual
            tokens, length budget), or a bare ``max_seq_len`` (text only, no markers).
        drop_empty_because: drop a dangling "BECAUSE:" target (the seed keeps it).

    Returns:
        Examples in the order of ``problems`` and truncation counts.
    """
    from ablate.data.encoding import encode_pair, encode_prompt
    from ablate.data.prompts import build_prompt

    if tokenizer.bos_token_id is None or tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no BOS or EOS token; the model contract needs both")
    examples: list[Example] = []
    truncated = dropped = prompts_truncated = 0
    for problem in problems:
        pair = build_prompt(problem, prompt_format, drop_empty_because=drop_empty_because)
        encoded = encode_pair(tokenizer, pair, layout, problem.has_image)
        prompt_ids, prompt_cut = encode_prompt(tokenizer, pair.prompt, layout, problem.has_image)
        truncated += encoded.truncated
        prompts_truncated += prompt_cut
        if all(label == IGNORE_INDEX for label in encoded.labels):
            dropped += 1
        examples.append(
            Example(
                pid=str(problem.pid),
                input_ids=tuple(encoded.input_ids),
                labels=tuple(encoded.labels),
                prompt_ids=tuple(prompt_ids),
                visual_at=encoded.visual_at,
                problem=problem,
                has_image=problem.has_image,
                n_choices=len(problem.choices),
            )
        )
    stats = EncodeStats(len(problems), truncated, dropped, prompts_truncated)
    return examples, stats


def trainable_examples(examples: Sequence[Example]) -> list[Example]:
    """The examples that carry at least one label token."""
    return [e for e in examples if any(label != IGNORE_INDEX for label in e.labels)]


def epoch_batches(
    lengths: Sequence[int],
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    length_grouped: bool,
) -> list[list[int]]:
    """The micro-batches (lists of indices) of one epoch, a pure function of ``(seed, epoch)``.

    Deriving the order from the seed and the epoch number, instead of from a running generator,
    lets a resumed run rebuild the exact order of the interrupted epoch and skip what it has done.

    Args:
        lengths: sequence length of every sample.
        batch_size: samples per micro-batch (the last one may be smaller).
        seed: the run seed.
        epoch: 0-based epoch.
        length_grouped: sort by length inside mega-batches of ``50 * batch_size`` samples, then
            shuffle the batches; otherwise plain shuffled chunks.
    """
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(len(lengths), generator=generator).tolist()
    if not length_grouped or batch_size == 1:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    mega = batch_size * MEGA_BATCH_MULTIPLIER
    batches: list[list[int]] = []
    for start in range(0, len(order), mega):
        chunk = sorted(order[start : start + mega], key=lambda i: -lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    perm = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in perm]


ImageSource = Callable[[Any], torch.Tensor]
"""Problem -> its image tensor (3, H, W): an :class:`~ablate.data.image_cache.ImageCache` (uint8,
normalised by the model on the device) or any callable giving normalised floats."""


def _images(examples: Sequence[Example], load_image: ImageSource) -> dict[str, torch.Tensor | None]:
    """Images (B, 3, H, W) or None when no sample has one, ``has_image`` and ``visual_at`` (B,).

    ``visual_at`` is where each sample's visual tokens go among its real tokens.
    """
    has_image = torch.tensor([e.has_image for e in examples], dtype=torch.bool)  # (B,)
    visual_at = torch.tensor([e.visual_at for e in examples], dtype=torch.long)  # (B,)
    if not any(e.has_image for e in examples):
        return {"images": None, "has_image": has_image, "visual_at": visual_at}
    loaded = [load_image(e.problem) if e.has_image else None for e in examples]
    template = next(t for t in loaded if t is not None)
    stacked = torch.stack([t if t is not None else torch.zeros_like(template) for t in loaded])
    return {"images": stacked, "has_image": has_image, "visual_at": visual_at}


def collate_train(
    examples: Sequence[Example], pad_id: int, load_image: ImageSource
) -> dict[str, torch.Tensor | None]:
    """A right-padded training batch: ``input_ids``, ``attention_mask``, ``labels``, images."""
    width = max(len(e.input_ids) for e in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)  # (B, T)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)  # (B, T)
    attention_mask = torch.zeros((len(examples), width), dtype=torch.long)  # (B, T)
    for row, example in enumerate(examples):
        n = len(example.input_ids)
        input_ids[row, :n] = torch.tensor(example.input_ids)
        labels[row, :n] = torch.tensor(example.labels)
        attention_mask[row, :n] = 1
    batch: dict[str, torch.Tensor | None] = {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "labels": labels,
    }
    batch.update(_images(examples, load_image))
    return batch


def collate_prompts(
    examples: Sequence[Example], pad_id: int, load_image: ImageSource
) -> dict[str, torch.Tensor | None]:
    """A left-padded generation batch: ``input_ids``, ``attention_mask`` (B, T), images."""
    width = max(len(e.prompt_ids) for e in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)  # (B, T)
    attention_mask = torch.zeros((len(examples), width), dtype=torch.long)  # (B, T)
    for row, example in enumerate(examples):
        n = len(example.prompt_ids)
        input_ids[row, width - n :] = torch.tensor(example.prompt_ids)
        attention_mask[row, width - n :] = 1
    batch: dict[str, torch.Tensor | None] = {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
    }
    batch.update(_images(examples, load_image))
    return batch


def collate_layout(
    examples: Sequence[Example],
    pad_id: int,
    load_image: ImageSource,
    n_visual: int,
    layout: str,
    um_slot: bool = False,
    prompts: bool = False,
) -> dict[str, Any]:
    """A micro-batch laid out for the model, computed here (in the loader's workers).

    Args:
        examples: the micro-batch's examples.
        pad_id: the tokenizer's pad id.
        load_image: the split's image loader.
        n_visual: V' tokens per image.
        layout: ``pad`` or ``pack`` (training), ``left`` (generation).
        um_slot: u_m in the sequence (``isolate_modality_token: false``).
        prompts: lay out the generation prompts (``prompt_ids``, no labels).

    Returns:
        ``{"layout": BatchLayout, "images": (n, 3, H, W) or None}``: images of the image samples
        only, in sample order (what ``MultimodalModel.forward_layout`` takes).
    """
    from ablate.model.batch_layout import SampleTokens, build_batch_layout

    samples = [
        SampleTokens(e.prompt_ids, None, e.visual_at, e.has_image)
        if prompts
        else SampleTokens(e.input_ids, e.labels, e.visual_at, e.has_image)
        for e in examples
    ]
    batch = build_batch_layout(samples, n_visual, pad_id, layout, um_slot=um_slot)  # type: ignore[arg-type]
    loaded = [load_image(e.problem) for e in examples if e.has_image]
    return {"layout": batch, "images": torch.stack(loaded) if loaded else None}


def layout_loader(
    examples: Sequence[Example],
    micro_batches: list[list[int]],
    collate: Callable[[Sequence[Example]], dict[str, Any]],
    *,
    num_workers: int = 0,
    pin_memory: bool = False,
    seed: int = 0,
) -> torch.utils.data.DataLoader:
    """A DataLoader of laid-out micro-batches in the given order.

    Workers lay out and load images ahead of the GPU; ``pin_memory`` makes the host-to-device
    copies asynchronous. The loader gets its own generator: a DataLoader otherwise draws its
    worker base seed from the global torch RNG each time it is iterated, which would make a
    resumed epoch consume the global RNG (and hence dropout) differently from an uninterrupted one.
    """
    return torch.utils.data.DataLoader(
        ExampleDataset(examples),
        batch_sampler=micro_batches,
        collate_fn=collate,
        num_workers=num_workers,
        pin_memory=pin_memory,
        prefetch_factor=4 if num_workers else None,
        persistent_workers=False,
        generator=torch.Generator().manual_seed(seed),
    )


class ExampleDataset(torch.utils.data.Dataset):
    """Index -> :class:`Example`; collation (and image loading) happens in the collate function."""

    def __init__(self, examples: Sequence[Example]) -> None:
        self.examples = list(examples)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> Example:
        return self.examples[index]
