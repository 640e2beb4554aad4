"""The multimodal model: frozen LLM + frozen vision tower, joined by a neck, u_m and adapters.

Input layout (paper eq. 4; the seed code and LaVIN): ``[u_m, BOS, "Image: ", V', prompt, answer,
EOS]`` for image questions and ``[u_m, BOS, "Image: N/A", prompt, answer, EOS]`` for text-only ones,
in one batch. The data layer builds the text part with its markers (:mod:`ablate.data.encoding`)
and says where ``V'`` (one token per tapped ViT block) goes: ``visual_at``, after BOS and the
marker. Only the adapters, the neck and u_m train; gradients reach the vision adapters through the
LLM ("Multimodal Model Tuning").

Loss. The seed trains at micro-batch 1 with 32 accumulation steps, each sample's loss the mean over
its own answer tokens. :func:`sample_mean_losses` computes exactly that per sample, so a recipe
that sums them and divides by the samples of its accumulation window gets the reference's gradient
at any micro-batch (HF's token-mean loss over a micro-batch would reweight long answers).

As in LaVIN's code, no other token attends to u_m by default (``ModelSpec.isolate_modality_token``,
a 4D attention mask): u_m then acts only through the routers that read its hidden state.
Routing in the LLM reads the hidden state at u_m. While training (right padding) u_m is position 0;
in left-padded, KV-cached generation the model tells the routers where u_m is for the prefill and
lets them reuse the prefill's weights for every decode step (``RoutingState``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from transformers.modeling_outputs import CausalLMOutputWithPast

from ablate.model.adapters.base import AdaptedInput, RoutingHead, RoutingState
from ablate.model.adapters.configs import AdapterConfig, validate_adapter_config
from ablate.model.llm import load_llm, meta_llm, torch_dtype
from ablate.model.neck import ModalityToken, VisualNeck
from ablate.model.placement import place_adapters
from ablate.model.sizing import (  # noqa: F401 - part of this module's public API (the contract)
    count_trainable_parameters,
    describe_model,
    estimate_gpu_memory_gib,
)
from ablate.model.spec import ModelSpec
from ablate.model.vision import (
    cls_taps,
    get_vision_preset,
    image_statistics,
    image_transform,
    load_vision_tower,
    meta_vision_tower,
    tap_indices,
    tower_blocks,
    tower_width,
)

IGNORE_INDEX = -100


class MultimodalModel(nn.Module):
    """Frozen LLM and vision tower with trainable adapters, visual neck and modality token.

    Attributes:
        llm: the transformers causal LM (adapters inside).
        visual: the open_clip vision tower (adapters inside).
        neck: the visual neck V -> V'.
        modality: the modality token u_m.
        tokenizer: the LLM's tokenizer (pad token set), or None on the meta device.
        image_transform: PIL image -> (3, H, W) tensor for training images (``image_resize``,
            ``image_norm`` with role train).
        eval_image_transform: the same for evaluation images (role eval: under ``seed`` they are
            normalised with ImageNet statistics, as LaVIN's eval.py does).
        image_stats: role (train, eval) -> the (mean, std) those transforms normalise with.
        image_size: the preset's input resolution.
    """

    def __init__(
        self,
        spec: ModelSpec,
        adapter: AdapterConfig,
        llm: nn.Module,
        visual: nn.Module,
        tokenizer: Any = None,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.adapter_config = adapter
        preset = get_vision_preset(spec.vision)
        self.llm = llm
        self.visual = visual
        self.tokenizer = tokenizer
        self.image_size = preset.image_size
        self.image_stats = {
            role: image_statistics(spec.image_norm, role, preset) for role in ("train", "eval")
        }
        self.image_transform = image_transform(
            preset, spec.image_resize, *self.image_stats["train"]
        )
        self.eval_image_transform = image_transform(
            preset, spec.image_resize, *self.image_stats["eval"]
        )
        self.taps = tap_indices(len(tower_blocks(visual)), spec.tap_every)
        llm_width = int(llm.config.hidden_size)
        self.neck = VisualNeck(tower_width(visual), llm_width, spec.neck)
        self.modality = ModalityToken(llm_width)
        self.routing = RoutingState()
        self.requires_grad_(False)
        trainable = place_adapters(self.llm, self.visual, adapter, self.routing)
        trainable += list(self.neck.parameters()) + list(self.modality.parameters())
        for p in trainable:
            # fp32 master weights for every method (the seed casts its trainable params with
            # .float()); peft creates LoRA in the base layer's dtype, and a GradScaler refuses to
            # unscale fp16 gradients
            p.data = p.data.float()
            p.requires_grad_(True)
        self._trainable_ids = {id(p) for p in trainable}

    # ------------------------------------------------------------------ trainable state
    @property
    def modality_token_inert(self) -> bool:
        """Whether nothing reads u_m, so its parameters get exactly zero gradient.

        With the isolating mask (LaVIN's ``mask[:, :, 1:, 0] = -inf``) only LLM routers read u_m.
        Under the Bottleneck Adapter there is none: u_m still "trains" (it is in the optimiser, as
        in the seed) but never changes. Plans and run records say so.
        """
        if not self.spec.isolate_modality_token:
            return False
        return not any(isinstance(m, RoutingHead) for m in self.llm.modules())

    def effective_trainable_count(self) -> int:
        """Trainable parameters that can change: all of them, less u_m when it is inert."""
        total = sum(p.numel() for _, p in self.trainable_named_parameters())
        if self.modality_token_inert:
            total -= sum(p.numel() for p in self.modality.parameters())
        return total

    def trainable_named_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """Adapters, neck and u_m: the parameters the optimiser updates."""
        return [(n, p) for n, p in self.named_parameters() if id(p) in self._trainable_ids]

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """The trainable weights alone (a few MB at 7B), detached copies on CPU."""
        return {n: p.detach().cpu().clone() for n, p in self.trainable_named_parameters()}

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load weights saved by :meth:`trainable_state_dict`, strict.

        Raises:
            ValueError: missing or unexpected keys, or a shape mismatch (named in the message).
        """
        params = dict(self.trainable_named_parameters())
        missing = sorted(set(params) - set(state))
        unexpected = sorted(set(state) - set(params))
        if missing or unexpected:
            raise ValueError(
                f"trainable state dict does not match the model: missing {missing[:5]} "
                f"({len(missing)}), unexpected {unexpected[:5]} ({len(unexpected)})"
            )
        with torch.no_grad():
            for name, p in params.items():
                saved, wanted = tuple(state[name].shape), tuple(p.shape)
                if saved != wanted:
                    raise ValueError(f"shape of {name!r}: saved {saved}, model {wanted}")
                p.copy_(state[name].to(p.device, p.dtype))

    def record(self) -> dict[str, Any]:
        """What was built, for the run's provenance: presets, transform, taps, sizes."""
        preset = get_vision_preset(self.spec.vision)
        return {
            "llm": self.spec.llm,
            "llm_source": str(getattr(self.llm, "name_or_path", "") or "random"),
            "llm_layers": int(self.llm.config.num_hidden_layers),
            "llm_width": int(self.llm.config.hidden_size),
            "precision": self.spec.precision,
            "quantization": self.spec.quantization,
            "vision": self.spec.vision,
            "vision_open_clip_model": preset.model_name,
            "vision_quick_gelu": preset.quick_gelu,
            "image_size": preset.image_size,
            "image_resize": self.spec.image_resize,
            "image_norm": self.spec.image_norm,
            "image_mean_train": list(self.image_stats["train"][0]),
            "image_std_train": list(self.image_stats["train"][1]),
            "image_mean_eval": list(self.image_stats["eval"][0]),
            "image_std_eval": list(self.image_stats["eval"][1]),
            "taps": [i + 1 for i in self.taps],
            "adapter": self.adapter_config.name,
            "trainable_params": sum(p.numel() for _, p in self.trainable_named_parameters()),
            "trainable_params_effective": self.effective_trainable_count(),
            "modality_token_inert": self.modality_token_inert,
        }

    def enable_gradient_checkpointing(self) -> None:
        """Recompute the frozen blocks' activations in the backward pass (less memory, ~30% slower).

        Gradients still reach every adapter: the recomputed blocks include them.
        """
        self.llm.activation_checkpointing_enable(
            activation_checkpointing_kwargs={"use_reentrant": False}
        )
        self.visual.set_grad_checkpointing(True)

    # ------------------------------------------------------------------ inputs
    @property
    def llm_dtype(self) -> torch.dtype:
        """Dtype of the LLM's activations (its input embeddings)."""
        return self.llm.get_input_embeddings().weight.dtype

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Images (N, 3, H, W) -> visual tokens V' (N, n_taps, d_llm) in the LLM's dtype."""
        visual_dtype = next(self.visual.parameters()).dtype
        v = cls_taps(self.visual, images.to(visual_dtype), self.taps)  # (N, n_taps, d_vision)
        return self.neck(v).to(self.llm_dtype)  # (N, n_taps, d_llm)

    def _assemble(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor | None,
        images: torch.Tensor | None,
        has_image: torch.Tensor | None,
        left_pad: bool,
        visual_at: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Build [u_m, BOS, marker, V'?, rest] per sample and pad the batch.

        Args:
            input_ids: (B, T) token ids, padded on either side.
            attention_mask: (B, T), 1 on real tokens.
            labels: (B, T) or None; -100 where there is no target.
            images: (N, 3, H, W) or None; rows without ``has_image`` are ignored.
            has_image: (B,) bool or None (no images).
            left_pad: pad on the left (generation) instead of the right (training).
            visual_at: (B,) index among each sample's real tokens where V' goes (default 1:
                right after BOS, no marker).

        Returns:
            embeds (B, T', d), mask (B, T'), labels (B, T') or None, u_m position (B,).
        """
        batch = input_ids.shape[0]
        device = input_ids.device
        if has_image is None:
            has_image = torch.zeros(batch, dtype=torch.bool, device=device)
        has_image = has_image.to(device=device, dtype=torch.bool)
        if images is None and bool(has_image.any()):
            raise ValueError("has_image marks samples with an image but no images were given")
        tokens = self.llm.get_input_embeddings()(input_ids)  # (B, T, d)
        flags = has_image.tolist()
        at = [1] * batch if visual_at is None else [int(i) for i in visual_at.tolist()]
        visual = self.encode_images(images[has_image]) if any(flags) else None
        u_m = self.modality(has_image).to(tokens.dtype)  # (B, 1, d)
        seqs, labs, k = [], [], 0
        for b in range(batch):
            keep = attention_mask[b].bool()
            tok = tokens[b][keep]  # (L, d): BOS, marker, prompt(, answer, EOS)
            n_visual = 0
            parts = [u_m[b], tok[: at[b]]]
            if flags[b]:
                parts.append(visual[k])  # (n_taps, d)
                n_visual = visual.shape[1]
                k += 1
            parts.append(tok[at[b] :])
            seqs.append(torch.cat(parts))
            if labels is not None:
                lab = labels[b][keep].long()
                ignore = torch.full((1 + n_visual,), IGNORE_INDEX, device=device, dtype=torch.long)
                labs.append(torch.cat([ignore[:1], lab[: at[b]], ignore[1:], lab[at[b] :]]))
        length = max(s.shape[0] for s in seqs)
        width = tokens.shape[-1]
        embeds = tokens.new_zeros(batch, length, width)
        mask = attention_mask.new_zeros(batch, length)
        out_labels = torch.full((batch, length), IGNORE_INDEX, device=device, dtype=torch.long)
        u_pos = torch.zeros(batch, dtype=torch.long, device=device)
        for b, seq in enumerate(seqs):
            n = seq.shape[0]
            start = length - n if left_pad else 0
            embeds[b, start : start + n] = seq
            mask[b, start : start + n] = 1
            if labels is not None:
                out_labels[b, start : start + n] = labs[b]
            u_pos[b] = start
        return embeds, mask, (out_labels if labels is not None else None), u_pos

    # ------------------------------------------------------------------ forward / generate
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor | None = None,
        images: torch.Tensor | None = None,
        has_image: torch.Tensor | None = None,
        visual_at: torch.Tensor | None = None,
        return_logits: bool = True,
    ) -> CausalLMOutputWithPast:
        """Loss on the answer tokens (and logits over the assembled sequence).

        Args:
            input_ids: (B, T) ``[BOS, marker, prompt, answer, EOS]``, right-padded.
            attention_mask: (B, T), 1 on real tokens.
            labels: (B, T), -100 everywhere but the answer (+EOS) tokens; shifted here to match
                the inserted u_m and visual positions.
            images: (B, 3, H, W) or None; rows without ``has_image`` are ignored.
            has_image: (B,) bool.
            visual_at: (B,) where V' goes among each sample's tokens (default 1, after BOS).
            return_logits: compute logits at every position. Training passes False: the LM head
                then runs on the answer positions only (a fifth of a ScienceQA sequence; at
                vocabulary 32,000 the head is the largest matmul of a small model), same loss.

        Returns:
            transformers ``CausalLMOutputWithPast`` with ``logits`` (B, T + 1 + n_taps (image
            rows), V) and, when labels are given, ``loss`` (the mean of the per-sample losses)
            and ``sample_losses`` (B,): each sample's mean over its own answer tokens.
        """
        self.routing.reset()
        embeds, mask, labels, u_pos = self._assemble(
            input_ids, attention_mask, labels, images, has_image, False, visual_at
        )
        attn = self._attention_mask(mask, u_pos, embeds.shape[1], embeds.dtype)
        if labels is None or return_logits:
            out = self.llm(inputs_embeds=embeds, attention_mask=attn, use_cache=False)
            if labels is not None:
                out["sample_losses"] = sample_mean_losses(out.logits, labels)  # (B,)
                out["loss"] = out["sample_losses"].mean()
            return out
        hidden = self.llm.model(
            inputs_embeds=embeds, attention_mask=attn, use_cache=False
        ).last_hidden_state  # (B, T', d), after the final norm
        losses = answer_token_losses(hidden, labels, self.llm.get_output_embeddings())  # (B,)
        out = CausalLMOutputWithPast(loss=losses.mean())
        out["sample_losses"] = losses
        return out

    def _attention_mask(
        self, mask: torch.Tensor, u_pos: torch.Tensor, q_len: int, dtype: torch.dtype
    ) -> torch.Tensor:
        """The LLM's attention mask: the 2D padding mask, or a 4D one that hides u_m.

        With ``isolate_modality_token`` (LaVIN), a query attends causally to non-pad keys except
        u_m, which only u_m itself sees. Every query may see itself, so all-pad rows of left-padded
        batches never softmax over nothing.

        Args:
            mask: (B, K) 1 on real tokens, K keys (cache included).
            u_pos: (B,) position of u_m among the keys.
            q_len: the queries are the last ``q_len`` keys.
            dtype: dtype of the additive mask (the LLM's activations).

        Returns:
            (B, K) as given, or (B, 1, q_len, K) additive float mask (0 or the dtype's minimum).
        """
        if not self.spec.isolate_modality_token:
            return mask
        keys = torch.arange(mask.shape[1], device=mask.device)  # (K,)
        queries = keys[-q_len:]  # (Q,)
        allowed = (keys[None, :] <= queries[:, None])[None] & mask.bool()[:, None, :]  # (B, Q, K)
        is_u_m = keys[None, None, :] == u_pos[:, None, None]  # (B, 1, K)
        from_u_m = queries[None, :, None] == u_pos[:, None, None]  # (B, Q, 1)
        allowed &= ~is_u_m | from_u_m
        allowed |= keys[None, None, :] == queries[None, :, None]  # the diagonal
        additive = torch.zeros(allowed.shape, dtype=dtype, device=mask.device)
        return additive.masked_fill(~allowed, torch.finfo(dtype).min)[:, None]  # (B, 1, Q, K)

    def _stopped(
        self, new_tokens: torch.Tensor, done: torch.Tensor, eos: int, stop: Callable[[str], bool]
    ) -> torch.Tensor:
        """(B,) rows not yet done whose text so far satisfies ``stop``."""
        rows = new_tokens.tolist()
        flags = [
            not finished and stop(_decoded(self.tokenizer, row, eos))
            for row, finished in zip(rows, done.tolist(), strict=True)
        ]
        return torch.tensor(flags, dtype=torch.bool, device=done.device)

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        images: torch.Tensor | None = None,
        has_image: torch.Tensor | None = None,
        visual_at: torch.Tensor | None = None,
        *,
        max_new_tokens: int = 64,
        temperature: float = 0.1,
        top_p: float = 0.75,
        seed: int | None = None,
        stop: Callable[[str], bool] | None = None,
    ) -> list[str]:
        """Sample answers for left-padded prompts ``[BOS, prompt]``, batched with a KV cache.

        ``temperature <= 0`` decodes greedily. Returns the decoded new text of every sample
        (up to its EOS, special tokens skipped). Call ``eval()`` first: the mode is left as is,
        and adapter dropout is active in training mode.

        ``stop(text)`` ends a row as soon as it is true of the row's text so far (evaluation stops
        once "The answer is X." is there). Every step still samples every row, so the random
        stream, and hence every other row's tokens, are the same as without it.
        """
        if self.tokenizer is None:
            raise ValueError("generate needs a tokenizer (this model was built on the meta device)")
        eos = self.tokenizer.eos_token_id
        embeds, mask, _, u_pos = self._assemble(
            input_ids, attention_mask, None, images, has_image, True, visual_at
        )
        device = embeds.device
        generator = torch.Generator(device=device)
        if seed is not None:
            generator.manual_seed(seed)
        batch = embeds.shape[0]
        positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
        self.routing.reset()
        self.routing.index, self.routing.record = u_pos, True
        try:
            out = self.llm(
                inputs_embeds=embeds,
                attention_mask=self._attention_mask(mask, u_pos, mask.shape[1], embeds.dtype),
                position_ids=positions,
                use_cache=True,
            )
            self.routing.record, self.routing.reuse = False, True
            past = out.past_key_values
            next_pos = positions[:, -1:] + 1  # (B, 1)
            logits = out.logits[:, -1].float()  # (B, V)
            new_tokens = torch.zeros(batch, 0, dtype=torch.long, device=device)
            done = torch.zeros(batch, dtype=torch.bool, device=device)
            for _ in range(max_new_tokens):
                token = _sample(logits, temperature, top_p, generator)  # (B,)
                token = torch.where(done, torch.full_like(token, eos), token)
                new_tokens = torch.cat([new_tokens, token[:, None]], dim=1)
                done |= token == eos
                if stop is not None:
                    done |= self._stopped(new_tokens, done, eos, stop)
                if bool(done.all()):
                    break
                mask = torch.cat([mask, mask.new_ones(batch, 1)], dim=1)
                out = self.llm(
                    input_ids=token[:, None],
                    attention_mask=self._attention_mask(mask, u_pos, 1, embeds.dtype),
                    position_ids=next_pos,
                    past_key_values=past,
                    use_cache=True,
                )
                past, next_pos = out.past_key_values, next_pos + 1
                logits = out.logits[:, -1].float()
        finally:
            self.routing.reset()
        texts = [_decoded(self.tokenizer, row, eos) for row in new_tokens.tolist()]
        return texts


def _decoded(tokenizer: Any, row: list[int], eos: int) -> str:
    row = row[: row.index(eos)] if eos in row else row
    return tokenizer.decode(row, skip_special_tokens=True)


def sample_mean_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Each sample's cross-entropy, averaged over its own answer tokens: (B, T, V), (B, T) -> (B,).

    The seed's objective at micro-batch 1 (``CrossEntropyLoss`` mean over one sample's label
    tokens). Computed in fp32; a sample without label tokens gives 0 (it is never trained on).
    """
    return answer_token_losses(logits, labels, nn.Identity())  # logits are the head's output


def answer_token_losses(
    hidden: torch.Tensor, labels: torch.Tensor, head: nn.Module
) -> torch.Tensor:
    """:func:`sample_mean_losses` computed from hidden states, the LM head on answer positions only.

    Args:
        hidden: (B, T, d) final hidden states (after the LLM's final norm).
        labels: (B, T) targets, -100 where there is none.
        head: the LM head (d -> V).

    Returns:
        (B,) each sample's mean cross-entropy over its own answer tokens (0 without any).
    """
    shift_labels = labels[:, 1:].to(hidden.device)  # (B, T-1): position t predicts token t+1
    keep = shift_labels != IGNORE_INDEX  # (B, T-1)
    rows, cols = keep.nonzero(as_tuple=True)  # N answer positions
    logits = head(hidden[rows, cols]).float()  # (N, V)
    per_token = torch.nn.functional.cross_entropy(
        logits, shift_labels[rows, cols], reduction="none"
    )  # (N,)
    sums = torch.zeros(labels.shape[0], dtype=per_token.dtype, device=hidden.device)
    sums = sums.index_add(0, rows, per_token)  # (B,)
    return sums / keep.sum(dim=1).clamp(min=1)


def _sample(
    logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator
) -> torch.Tensor:
    """Temperature + nucleus (top-p) sampling; greedy when temperature <= 0. (B, V) -> (B,)."""
    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    outside = sorted_probs.cumsum(-1) - sorted_probs > top_p  # keep the smallest head >= top_p
    sorted_probs = sorted_probs.masked_fill(outside, 0.0)
    sorted_probs = sorted_probs / sorted_probs.sum(-1, keepdim=True)
    choice = torch.multinomial(sorted_probs, 1, generator=generator)  # (B, 1)
    return order.gather(-1, choice).squeeze(-1)


def _move_adapters(model: MultimodalModel, device: str) -> None:
    """Put every adapter (fp32) and the neck/u_m on ``device``; frozen modules stay as loaded."""
    for module in model.modules():
        if isinstance(module, AdaptedInput):
            module.adapter.to(device)
    model.neck.to(device)
    model.modality.to(device)


def build_multimodal_model(
    model: ModelSpec, adapter: AdapterConfig | dict, device: str = "cpu"
) -> MultimodalModel:
    """Load the backbones of ``model``, insert ``adapter`` and return the multimodal model.

    Frozen backbones are in ``model.precision`` (the LLM possibly 4/8-bit); trainable modules in
    fp32. Weights are loaded from ``llm_path`` / ``vision_path``, the presets' defaults, or the
    tiny twins (materialised on first use).

    Raises:
        FileNotFoundError: weights missing or unreachable (one clear message).
        ValueError: a bad adapter config or a checkpoint that does not fit.
    """
    adapter = validate_adapter_config(adapter)
    llm, tokenizer = load_llm(model, device)
    visual = load_vision_tower(model).to(device=device, dtype=torch_dtype(model.precision))
    mm = MultimodalModel(model, adapter, llm, visual, tokenizer)
    _move_adapters(mm, device)
    return mm


def build_meta_model(model: ModelSpec, adapter: AdapterConfig | dict) -> MultimodalModel:
    """The multimodal model at real shapes on the meta device (no weights, no allocation)."""
    adapter = validate_adapter_config(adapter)
    llm = meta_llm(model.llm)
    visual = meta_vision_tower(model.vision)
    with torch.device("meta"):
        return MultimodalModel(model, adapter, llm, visual, tokenizer=None)
