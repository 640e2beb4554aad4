"""Where every token of a batch goes, computed on the host: padded rows or padding-free packing.

The model's input is ``[u_m, BOS, marker, V', prompt, answer, EOS]`` per sample (paper eq. 4). The
ids, labels and marker come from the data layer; V' (one token per tapped ViT block) and u_m come
from the model. :func:`build_batch_layout` decides every position once, on the host (in the
DataLoader's workers while training), so the forward pass needs no host sync: it embeds the ids,
drops V' and u_m into their slots with one ``index_copy`` each, and gathers the answer positions
by precomputed index.

u_m apart. With the seed's isolating mask no token attends to u_m, and RoPE is relative, so u_m's
hidden state at every layer is that of a one-token sequence: the model computes it apart (one row
per modality) for the routers that read it, and the sequence itself starts at BOS with a plain
causal mask. That is what lets training use SDPA's fused causal kernels and pack samples. Only
``isolate_modality_token: false`` (others attend to u_m) puts a u_m slot in the sequence
(``um_slot``).

Layouts:
- ``pad``: one sample a row, right-padded; pads sit after every real token, so a plain causal
  mask is exact for the real tokens and no mask tensor is built.
- ``pack``: all samples in one row, positions restarting at 0 per sample, attention
  block-diagonal (flash-attention varlen reads ``cu_seqlens``; SDPA gets a block mask): no
  computed token is padding.
- ``left``: left-padded rows with a 2D padding mask (batched generation with a KV cache).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Literal

import torch

IGNORE_INDEX = -100
Layout = Literal["pad", "pack", "left"]
LAYOUTS: tuple[str, ...] = ("pad", "pack", "left")


@dataclass(frozen=True)
class SampleTokens:
    """One sample's text tokens and where its visual tokens go.

    Attributes:
        ids: ``[BOS, marker, prompt(, answer, EOS)]`` token ids.
        labels: same length, ``-100`` except on targets; None for generation prompts.
        visual_at: index among ``ids`` where V' is inserted (after BOS and the marker).
        has_image: whether the sample has an image (else no V', u_m's text variant).
    """

    ids: Sequence[int]
    labels: Sequence[int] | None
    visual_at: int
    has_image: bool


@dataclass
class BatchLayout:
    """A batch laid out for the LLM; every tensor is built on the host and moved as a whole.

    Shapes: R rows of T positions, k samples, n images, N answer positions.

    Attributes:
        layout: ``pad``, ``pack`` or ``left``.
        input_ids: (R, T) ids; V' and u_m slots and pads hold the pad id.
        position_ids: (R, T) RoPE positions (restart at 0 per sample when packed).
        attention_mask: (R, T) 1 on real tokens; only for ``left`` (generation), else None.
        visual_index: (n * n_visual,) flat positions (row * T + column) of the V' slots, image by
            image in sample order.
        has_image: (k,) bool per sample.
        token_sample: (R, T) the sample each position belongs to (pads: the row's last sample).
        route_of: (R, T) which u_m routes each position: 1 for image samples, 0 for text ones.
        um_index: (k,) flat positions of u_m slots (``um_slot`` only), else None.
        answer_index: (N,) flat positions whose next token is a target.
        answer_target: (N,) those targets.
        answer_sample: (N,) their sample.
        answer_count: (k,) float, answer tokens per sample (at least 1: a sample without any
            contributes a zero loss).
        cu_seqlens: (k + 1,) int32 cumulative sample lengths (``pack`` only, flash varlen).
        max_seqlen: longest sample (``pack`` only).
        lengths: real tokens per sample (u_m slot and V' included), host ints.
        n_images: image samples (a host int).
    """

    layout: str
    input_ids: torch.Tensor
    position_ids: torch.Tensor
    attention_mask: torch.Tensor | None
    visual_index: torch.Tensor
    has_image: torch.Tensor
    token_sample: torch.Tensor
    route_of: torch.Tensor
    um_index: torch.Tensor | None
    answer_index: torch.Tensor
    answer_target: torch.Tensor
    answer_sample: torch.Tensor
    answer_count: torch.Tensor
    cu_seqlens: torch.Tensor | None
    max_seqlen: int
    lengths: tuple[int, ...]
    n_images: int

    @property
    def n_samples(self) -> int:
        """k, the samples in the batch."""
        return len(self.lengths)

    @property
    def computed_tokens(self) -> int:
        """Positions the LLM computes (R x T), padding included."""
        return int(self.input_ids.numel())

    @property
    def useful_tokens(self) -> int:
        """Positions that belong to a sample."""
        return sum(self.lengths)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> BatchLayout:
        """The same layout with every tensor on ``device`` (pinned sources copy asynchronously)."""
        moved = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                value = value.to(device, non_blocking=non_blocking)
            moved[f.name] = value
        return BatchLayout(**moved)

    def pin_memory(self) -> BatchLayout:
        """Page-locked copies (the DataLoader calls this with ``pin_memory=True``)."""
        pinned = {}
        for f in fields(self):
            value = getattr(self, f.name)
            pinned[f.name] = value.pin_memory() if isinstance(value, torch.Tensor) else value
        return BatchLayout(**pinned)


def _sample_row(sample: SampleTokens, n_visual: int, um_slot: bool) -> tuple[list[int], list[int]]:
    """A sample's (ids, labels) with its u_m and V' slots (slot ids -1, labels -100)."""
    ids = list(sample.ids)
    labels = list(sample.labels) if sample.labels is not None else [IGNORE_INDEX] * len(ids)
    n_vis = n_visual if sample.has_image else 0
    at = sample.visual_at
    slot_ids = [-1] * n_vis
    slot_labels = [IGNORE_INDEX] * n_vis
    out_ids = ids[:at] + slot_ids + ids[at:]
    out_labels = labels[:at] + slot_labels + labels[at:]
    if um_slot:
        out_ids, out_labels = [-1, *out_ids], [IGNORE_INDEX, *out_labels]
    return out_ids, out_labels


def build_batch_layout(
    samples: Sequence[SampleTokens],
    n_visual: int,
    pad_id: int,
    layout: Layout = "pad",
    *,
    um_slot: bool = False,
) -> BatchLayout:
    """Lay ``samples`` out as ``layout`` says (see the module docstring).

    Args:
        samples: the batch's samples (their order is the order of losses and images).
        n_visual: V' tokens per image (tapped ViT blocks).
        pad_id: id for pads and slots (embedded, then overwritten or never attended).
        layout: ``pad`` (training, right-padded), ``pack`` (training, one row), ``left``
            (generation prompts, left-padded).
        um_slot: put u_m in the sequence (``isolate_modality_token: false``).

    Raises:
        ValueError: no samples, an unknown layout, or ``visual_at`` outside a sample.
    """
    if not samples:
        raise ValueError("a batch needs at least one sample")
    if layout not in LAYOUTS:
        raise ValueError(f"unknown batch layout {layout!r}; allowed: {', '.join(LAYOUTS)}")
    for s in samples:
        if not 0 <= s.visual_at <= len(s.ids):
            raise ValueError(f"visual_at={s.visual_at} outside a sample of {len(s.ids)} tokens")
    rows = [_sample_row(s, n_visual, um_slot) for s in samples]
    lengths = [len(ids) for ids, _ in rows]
    k = len(samples)
    if layout == "pack":
        n_rows, width = 1, sum(lengths)
        starts = [(0, sum(lengths[:i])) for i in range(k)]  # (row, column) of each sample
    else:
        n_rows, width = k, max(lengths)
        starts = [(i, width - n if layout == "left" else 0) for i, n in enumerate(lengths)]

    input_ids = torch.full((n_rows, width), pad_id, dtype=torch.long)
    position_ids = torch.zeros((n_rows, width), dtype=torch.long)
    token_sample = torch.zeros((n_rows, width), dtype=torch.long)
    route_of = torch.zeros((n_rows, width), dtype=torch.long)
    attention_mask = torch.zeros((n_rows, width), dtype=torch.long) if layout == "left" else None
    visual_index: list[int] = []
    um_index: list[int] = []
    answer_index: list[int] = []
    answer_target: list[int] = []
    answer_sample: list[int] = []
    answer_count: list[float] = []
    placed = zip(rows, starts, samples, strict=True)
    for i, ((ids, labels), (row, col), sample) in enumerate(placed):
        n = len(ids)
        base = row * width + col
        real = torch.tensor([t if t >= 0 else pad_id for t in ids], dtype=torch.long)
        input_ids[row, col : col + n] = real
        position_ids[row, col : col + n] = torch.arange(n)
        token_sample[row, col : col + n] = i
        route_of[row, col : col + n] = int(sample.has_image)
        if layout != "pack":  # pads follow (or precede) their row's sample
            token_sample[row] = i
            route_of[row] = int(sample.has_image)
            if layout == "pad":
                position_ids[row, n:] = torch.arange(n, width)  # plain causal: no restart
        if attention_mask is not None:
            attention_mask[row, col : col + n] = 1
        offset = 1 if um_slot else 0
        if um_slot:
            um_index.append(base)
        if sample.has_image:
            first = base + offset + sample.visual_at
            visual_index.extend(range(first, first + n_visual))
        count = 0
        for p in range(n - 1):  # position p predicts token p + 1
            if labels[p + 1] != IGNORE_INDEX:
                answer_index.append(base + p)
                answer_target.append(labels[p + 1])
                answer_sample.append(i)
                count += 1
        answer_count.append(float(max(count, 1)))
    cu_seqlens = None
    if layout == "pack":
        cu_seqlens = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32)
    return BatchLayout(
        layout=layout,
        input_ids=input_ids,
        position_ids=position_ids,
        attention_mask=attention_mask,
        visual_index=torch.tensor(visual_index, dtype=torch.long),
        has_image=torch.tensor([s.has_image for s in samples], dtype=torch.bool),
        token_sample=token_sample,
        route_of=route_of,
        um_index=torch.tensor(um_index, dtype=torch.long) if um_slot else None,
        answer_index=torch.tensor(answer_index, dtype=torch.long),
        answer_target=torch.tensor(answer_target, dtype=torch.long),
        answer_sample=torch.tensor(answer_sample, dtype=torch.long),
        answer_count=torch.tensor(answer_count, dtype=torch.float32),
        cu_seqlens=cu_seqlens,
        max_seqlen=max(lengths),
        lengths=tuple(lengths),
        n_images=sum(s.has_image for s in samples),
    )


def block_causal_mask(layout: BatchLayout, dtype: torch.dtype) -> torch.Tensor:
    """(R, 1, T, T) additive mask of a packed batch: causal inside each sample, nothing across.

    Built on the layout's device from ``token_sample`` (no host sync). For SDPA or eager
    attention; flash-attention varlen uses ``cu_seqlens`` instead.
    """
    seg = layout.token_sample  # (R, T)
    width = seg.shape[1]
    pos = torch.arange(width, device=seg.device)
    causal = pos[None, :] <= pos[:, None]  # (T, T): key <= query
    allowed = (seg[:, :, None] == seg[:, None, :]) & causal[None]  # (R, T, T)
    mask = torch.zeros(allowed.shape, dtype=dtype, device=seg.device)
    return mask.masked_fill(~allowed, torch.finfo(dtype).min)[:, None]  # (R, 1, T, T)
