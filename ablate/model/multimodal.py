"""The multimodal model: frozen LLM + frozen vision tower, joined by a neck, u_m and adapters.

Input layout (paper eq. 4; the seed code and LaVIN): ``[u_m, BOS, "Image: ", V', prompt, answer,
EOS]`` for image questions and ``[u_m, BOS, "Image: N/A", prompt, answer, EOS]`` for text-only ones,
in one batch. The data layer builds the text part with its markers (:mod:`ablate.data.encoding`)
and says where ``V'`` (one token per tapped ViT block) goes: ``visual_at``, after BOS and the
marker. Only the adapters, the neck and u_m train; gradients reach the vision adapters through the
LLM ("Multimodal Model Tuning").

Loss. The seed trains at micro-batch 1 with 32 accumulation steps, each sample's loss the mean over
its own answer tokens. :meth:`MultimodalModel.forward_layout` returns exactly that per sample, so a
recipe that sums them and divides by the samples of its accumulation window gets the reference's
gradient at any micro-batch, padded or packed (HF's token-mean loss over a micro-batch would
reweight long answers).

As in LaVIN's code, no other token attends to u_m by default (``ModelSpec.isolate_modality_token``):
u_m then acts only through the LLM routers that read its hidden state. Its states do not depend on
the sequence, so the model computes them apart, once per modality, and the sequence itself runs
with a plain causal mask, padded or packed (:mod:`ablate.model.batch_layout` lays every batch out
on the host). Generation records the routers' weights at prefill and reuses them for every decode
step (``RoutingState``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers.modeling_outputs import CausalLMOutputWithPast

from ablate.model.adapters.base import RoutingHead, RoutingState
from ablate.model.adapters.configs import AdapterConfig
from ablate.model.batch_layout import (
    IGNORE_INDEX,
    BatchLayout,
    Layout,
    SampleTokens,
    block_causal_mask,
    build_batch_layout,
)
from ablate.model.generation import generate_answers
from ablate.model.neck import ModalityToken, VisualNeck
from ablate.model.placement import place_adapters
from ablate.model.spec import ModelSpec
from ablate.model.vision import (
    cls_taps,
    get_vision_preset,
    image_resize_transform,
    image_statistics,
    image_transform,
    normalize_images,
    tap_indices,
    tower_blocks,
    tower_width,
)

__all__ = ["IGNORE_INDEX", "MultimodalModel"]


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
        image_resize: PIL image -> uint8 (3, H, W), the transforms' resize alone (what the image
            cache stores; :meth:`encode_images` normalises on the device).
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
        self.image_resize = image_resize_transform(preset, spec.image_resize)
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
        self._llm_routes = any(isinstance(m, RoutingHead) for m in self.llm.modules())
        self.generated_tokens = 0

    # ------------------------------------------------------------------ trainable state
    @property
    def modality_token_inert(self) -> bool:
        """Whether nothing reads u_m, so its parameters get exactly zero gradient.

        With the isolating mask (LaVIN's ``mask[:, :, 1:, 0] = -inf``) only LLM routers read u_m.
        Under the Bottleneck Adapter there is none: u_m still "trains" (it is in the optimiser, as
        in the seed) but never changes. Plans and run records say so.
        """
        return self.spec.isolate_modality_token and not self._llm_routes

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

    def encode_images(self, images: torch.Tensor, role: str = "train") -> torch.Tensor:
        """Images (N, 3, H, W) -> visual tokens V' (N, n_taps, d_llm) in the LLM's dtype.

        uint8 images (the image cache's) are normalised here, on the device, with the statistics
        of ``role`` (``train`` or ``eval``: see ``ModelSpec.image_norm``); float images are taken
        as already normalised.
        """
        if images.dtype == torch.uint8:
            images = normalize_images(images, *self.image_stats[role])
        visual_dtype = next(self.visual.parameters()).dtype
        v = cls_taps(self.visual, images.to(visual_dtype), self.taps)  # (N, n_taps, d_vision)
        return self.neck(v).to(self.llm_dtype)  # (N, n_taps, d_llm)

    @property
    def routes_on_u_m(self) -> bool:
        """Whether some LLM router reads u_m (else u_m changes nothing and is never computed)."""
        return self._llm_routes

    def lay_out(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor | None = None,
        has_image: torch.Tensor | None = None,
        visual_at: torch.Tensor | None = None,
        layout: Layout = "pad",
    ) -> BatchLayout:
        """Padded (B, T) tensors, as the data layer's collation gives them, -> a BatchLayout.

        Reads the tensors on the host (a sync on a GPU): for tests and one-off calls. Training
        batches are laid out in the DataLoader (``build_batch_layout``).

        Args:
            input_ids: (B, T) ``[BOS, marker, prompt(, answer, EOS)]``, padded on either side.
            attention_mask: (B, T), 1 on real tokens.
            labels: (B, T) or None; -100 where there is no target.
            has_image: (B,) bool or None (no images).
            visual_at: (B,) where V' goes among each sample's real tokens (default 1, after BOS).
            layout: ``pad``, ``pack`` or ``left``.
        """
        keep = attention_mask.bool().cpu()
        ids = input_ids.cpu()
        labs = labels.cpu() if labels is not None else None
        batch = ids.shape[0]
        flags = has_image.tolist() if has_image is not None else [False] * batch
        at = visual_at.tolist() if visual_at is not None else [1] * batch
        samples = [
            SampleTokens(
                ids=ids[b][keep[b]].tolist(),
                labels=labs[b][keep[b]].tolist() if labs is not None else None,
                visual_at=int(at[b]),
                has_image=bool(flags[b]),
            )
            for b in range(batch)
        ]
        pad_id = self.tokenizer.pad_token_id if self.tokenizer is not None else 0
        um_slot = not self.spec.isolate_modality_token
        return build_batch_layout(samples, len(self.taps), pad_id, layout, um_slot=um_slot)

    def embed_layout(
        self, batch: BatchLayout, images: torch.Tensor | None, role: str = "train"
    ) -> torch.Tensor:
        """The LLM's input embeddings (R, T, d): tokens, V' and (in-sequence) u_m in their slots.

        Args:
            batch: the layout, on the model's device.
            images: (n, 3, H, W), one per image sample in sample order, or None.
            role: ``train`` or ``eval``, the statistics uint8 images are normalised with.
        """
        tokens = self.llm.get_input_embeddings()(batch.input_ids)  # (R, T, d)
        flat = tokens.flatten(0, 1)  # (R * T, d)
        n_slots = batch.visual_index.numel()
        if n_slots:
            if images is None or images.shape[0] * len(self.taps) != n_slots:
                got = "no images" if images is None else f"{images.shape[0]} images"
                raise ValueError(
                    f"the batch has {n_slots // len(self.taps)} image samples but {got} were given"
                )
            visual = self.encode_images(images, role).flatten(0, 1)  # (n * n_taps, d)
            flat = flat.index_copy(0, batch.visual_index, visual.to(flat.dtype))
        if batch.um_index is not None:
            u_m = self.modality(batch.has_image)[:, 0]  # (k, d)
            flat = flat.index_copy(0, batch.um_index, u_m.to(flat.dtype))
        return flat.view_as(tokens)

    def route(self, batch: BatchLayout, record: bool = False) -> None:
        """Point the LLM's routers at u_m for ``batch`` (see ``RoutingState``).

        u_m apart: run the LLM on u_m alone (one one-token row per modality; it attends only to
        itself, so its states are the in-sequence ones, RoPE being relative), recording every
        router's weights, then let the sequence reuse them. u_m in the sequence: routers read it
        at ``um_index``.
        """
        state = self.routing
        state.reset()
        if not self._llm_routes:
            return
        if batch.um_index is not None:
            state.um_index, state.token_route, state.record = (
                batch.um_index,
                batch.token_sample,
                record,
            )
            return
        device = batch.input_ids.device
        variants = torch.tensor([False, True], device=device)  # route 0: text, 1: image
        u_m = self.modality(variants).to(self.llm_dtype)  # (2, 1, d)
        state.record = True
        # two tokens: never recomputed in the backward pass (a recompute would run while the
        # state serves the sequence), so activation checkpointing is off for this pass
        layers = [m for m in self.llm.modules() if getattr(m, "gradient_checkpointing", False)]
        for layer in layers:
            layer.gradient_checkpointing = False
        try:
            # positions default to 0 (one token a row); passing them would make transformers
            # look for packed sequences with a host sync
            self.llm.model(inputs_embeds=u_m, use_cache=False)
        finally:
            for layer in layers:
                layer.gradient_checkpointing = True
        state.record, state.reuse, state.token_route = False, True, batch.route_of

    def _attention_inputs(self, batch: BatchLayout, dtype: torch.dtype) -> dict[str, Any]:
        """Mask and positions for the LLM: none (plain causal), block-diagonal, or padding.

        ``pad``: nothing; the LLM runs its plain causal path (SDPA's fused kernels) and pads,
        all after the real tokens, are never attended by them. ``pack``: positions restart per
        sample; flash-attention gets the sample boundaries (``cu_seqlens``, varlen kernels),
        other implementations a block-diagonal causal mask. ``left``: the 2D padding mask.
        """
        if batch.layout == "pad":
            return {}
        if batch.layout == "left":
            return {"attention_mask": batch.attention_mask, "position_ids": batch.position_ids}
        implementation = str(getattr(self.llm.config, "_attn_implementation", "") or "")
        if "flash" in implementation:
            return {
                "position_ids": batch.position_ids,
                "cu_seq_lens_q": batch.cu_seqlens,
                "cu_seq_lens_k": batch.cu_seqlens,
                "max_length_q": batch.max_seqlen,
                "max_length_k": batch.max_seqlen,
            }
        return {
            "attention_mask": block_causal_mask(batch, dtype),
            "position_ids": batch.position_ids,
        }

    # ------------------------------------------------------------------ forward / generate
    def forward_layout(
        self,
        batch: BatchLayout,
        images: torch.Tensor | None = None,
        return_logits: bool = False,
    ) -> CausalLMOutputWithPast:
        """Per-sample answer losses of a laid-out batch, with no host sync.

        Args:
            batch: the layout, on the model's device.
            images: (n, 3, H, W), one per image sample, in sample order.
            return_logits: also compute logits at every position (R, T, V). Training leaves it
                False: the LM head then runs on the answer positions only (a fifth of a
                ScienceQA sequence; at vocabulary 32,000 the head is the largest matmul of a
                small model), same loss.

        Returns:
            ``CausalLMOutputWithPast`` with ``loss`` (mean of the per-sample losses),
            ``sample_losses`` (k,): each sample's mean over its own answer tokens, and
            ``logits`` when asked.
        """
        embeds = self.embed_layout(batch, images)
        # the routing state stays set until the next forward: a checkpointed backward pass
        # recomputes the layers with it
        self.route(batch)
        kwargs = self._attention_inputs(batch, embeds.dtype)
        if return_logits:
            logits = self.llm(inputs_embeds=embeds, use_cache=False, **kwargs).logits
            picked = logits.flatten(0, 1)[batch.answer_index].float()  # (N, V)
        else:
            logits = None
            hidden = self.llm.model(
                inputs_embeds=embeds, use_cache=False, **kwargs
            ).last_hidden_state  # (R, T, d), after the final norm
            head = self.llm.get_output_embeddings()
            picked = head(hidden.flatten(0, 1)[batch.answer_index]).float()  # (N, V)
        per_token = nn.functional.cross_entropy(picked, batch.answer_target, reduction="none")
        sums = per_token.new_zeros(batch.n_samples).index_add(0, batch.answer_sample, per_token)
        losses = sums / batch.answer_count  # (k,)
        out = CausalLMOutputWithPast(loss=losses.mean(), logits=logits)
        out["sample_losses"] = losses
        return out

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor | None = None,
        images: torch.Tensor | None = None,
        has_image: torch.Tensor | None = None,
        visual_at: torch.Tensor | None = None,
        return_logits: bool = True,
        layout: Layout = "pad",
    ) -> CausalLMOutputWithPast:
        """:meth:`forward_layout` on padded (B, T) tensors (laid out on the host first).

        Args:
            input_ids: (B, T) ``[BOS, marker, prompt, answer, EOS]``, right-padded.
            attention_mask: (B, T), 1 on real tokens.
            labels: (B, T), -100 everywhere but the answer (+EOS) tokens, or None (logits only).
            images: (B, 3, H, W) or None; rows without ``has_image`` are ignored.
            has_image: (B,) bool.
            visual_at: (B,) where V' goes among each sample's tokens (default 1, after BOS).
            return_logits: compute logits at every position of the layout (R, T, V).
            layout: ``pad`` or ``pack``.

        Returns:
            As :meth:`forward_layout`; without labels, logits and no loss.
        """
        batch = self.lay_out(input_ids, attention_mask, labels, has_image, visual_at, layout)
        batch = batch.to(input_ids.device)
        if images is not None and has_image is not None:
            images = images[has_image.to(images.device).bool()]
        if labels is None:
            embeds = self.embed_layout(batch, images)
            self.route(batch)
            kwargs = self._attention_inputs(batch, embeds.dtype)
            return self.llm(inputs_embeds=embeds, use_cache=False, **kwargs)
        return self.forward_layout(batch, images, return_logits)

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        images: torch.Tensor | None = None,
        has_image: torch.Tensor | None = None,
        visual_at: torch.Tensor | None = None,
        **settings: Any,
    ) -> list[str]:
        """:meth:`generate_layout` on padded prompt tensors ``[BOS, marker, prompt]`` (either side).

        ``images`` has a row per sample (rows without ``has_image`` are ignored).
        """
        batch = self.lay_out(input_ids, attention_mask, None, has_image, visual_at, "left")
        if images is not None and has_image is not None:
            images = images[has_image.to(images.device).bool()]
        return self.generate_layout(batch.to(input_ids.device), images, **settings)

    def generate_layout(
        self, batch: BatchLayout, images: torch.Tensor | None = None, **settings: Any
    ) -> list[str]:
        """Sample answers for a ``left`` layout of prompts (call ``eval()`` first).

        See :func:`~ablate.model.generation.generate_answers` for the settings
        (``max_new_tokens``, ``temperature``, ``top_p``, ``seed``, ``stop``).
        """
        return generate_answers(self, batch, images, **settings)
