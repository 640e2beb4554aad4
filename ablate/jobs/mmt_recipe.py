"""The ``mmt`` job: multimodal model tuning of adapters on ScienceQA, then evaluation.

An explicit recipe in the style of torchtune's ``lora_finetune_single_device.py``: :meth:`setup`
builds everything from the spec alone (model, data, optimiser, and the checkpoint to resume
from), :meth:`train` runs the epochs, :meth:`evaluate` generates and scores the validation and
test splits, :meth:`cleanup` releases memory. :func:`run_mmt` is the registered entry point.

Reproducibility. Every source of randomness derives from the run seed: the global torch and
Python RNGs (adapter init, dropout) are seeded before the model is built, the epoch order is a pure
function of ``(seed, epoch)``, generation seeds derive from ``(seed, batch)``. On CPU the same seed
gives the same metrics bit for bit. A checkpoint saves the RNG states with the position, so a
resumed run continues exactly where the interrupted one stood.

Checkpoints are written after every epoch (after its validation pass), at the end of an epoch's
training when a validation pass follows (a stop during validation resumes at that pass, not at the
epoch's first step), and when the worker asks the job to stop (at the next optimiser-step
boundary, then :class:`JobCancelled` is raised). An attempt > 1 resumes from ``run_dir``'s
checkpoint when a valid one is there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import json
import logging
import math
import random
import time
from pathlib import Path
from typing import Any

import torch

from ablate.errors import BatchCannotShrink, JobCancelled
from ablate.jobs.context import JobContext
from ablate.store.files import write_atomic_with
from ablate.train.batches import (
    collate_layout,
    layout_loader,
)
from ablate.train.checkpoint import (
    TrainPosition,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from ablate.train.cost import measured_hours
from ablate.train.optim import build_optimizer, lr_at_step, set_learning_rate
from ablate.train.run_data import encode_splits, load_splits
from ablate.train.step import WindowStep
from ablate.train.throughput import Throughput
from ablate.train.windows import auto_micro_batch, epoch_windows, split_window

logger = logging.getLogger(__name__)

ADAPTER_FILE = "adapter.safetensors"
AUTOCAST_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def seed_everything(seed: int) -> None:
    """Seed the global torch (CPU and CUDA) and Python RNGs."""
    random.seed(seed)
    torch.manual_seed(seed)


def _materialise_twins(model: Any) -> None:
    """Write the tiny twins a spec uses before seeding, so seeding covers the adapter init.

    A twin is written from its own fixed seed the first time it is used; doing that after the run
    seed was set would reset the global RNG mid-build and make the first run on a machine differ
    from every later one.
    """
    from ablate.model.llm import twin_llm_dir
    from ablate.model.spec import is_twin
    from ablate.model.vision import twin_vision_file

    if is_twin(model.llm) and not model.llm_path:
        twin_llm_dir(model.llm)
    if is_twin(model.vision) and not model.vision_path:
        twin_vision_file(model.vision)


class MmtRecipe:
    """One ``mmt`` run: setup, train, evaluate, cleanup.

    Args:
        spec: the run spec (``spec.config`` is an :class:`~ablate.jobs.mmt.MmtConfig`).
        ctx: the worker context (run dir, attempt, device, metrics, progress, stop flag).
    """

    def __init__(self, spec: Any, ctx: JobContext) -> None:
        self.spec = spec
        self.cfg = spec.config
        self.ctx = ctx
        self.device = ctx.device
        self.metrics: dict[str, float] = {}
        self.position = TrainPosition()
        self.history: dict[str, Any] = {"epoch_loss": [], "val_acc": []}
        self._loss_sum = 0.0
        self._loss_count = 0

    # ----------------------------------------------------------------- setup
    def setup(self) -> None:
        """Build the model, load and encode the data, build the optimiser, resume if possible."""
        t0 = time.perf_counter()
        from ablate.model.build import build_multimodal_model

        if torch.device(self.device).type == "cpu":
            torch.set_num_threads(self.cfg.train.cpu_threads)

        self.data = load_splits(self.cfg.data)  # before the model: a bad root fails in seconds
        _materialise_twins(self.cfg.model)
        seed_everything(self.spec.seed)

        self.model = build_multimodal_model(self.cfg.model, self.cfg.adapter, device=self.device)
        if self.cfg.train.gradient_checkpointing:
            self.model.enable_gradient_checkpointing()
        self.trainable = self.model.trainable_named_parameters()
        self.metrics["train/trainable_params"] = float(sum(p.numel() for _, p in self.trainable))
        self.metrics["train/trainable_params_effective"] = float(
            self.model.effective_trainable_count()
        )  # u_m left out when nothing reads it (Bottleneck Adapter): it gets zero gradient
        self._encode_data()
        self._plan_micro_batch()
        train_spec = self.cfg.train
        self.optimizer = build_optimizer(self.trainable, train_spec)
        self.autocast_dtype = AUTOCAST_DTYPES[train_spec.autocast]
        device_type = torch.device(self.device).type
        # the seed: fp16 with util/misc.py's NativeScaler (a torch GradScaler); CPU has one too
        self.scaler = torch.amp.GradScaler(device_type) if train_spec.autocast == "fp16" else None
        self.step = WindowStep(
            model=self.model,
            optimizer=self.optimizer,
            params=[p for _, p in self.trainable],
            scaler=self.scaler,
            autocast=self._autocast,
            grad_clip=train_spec.grad_clip,
            nan_loss=train_spec.nan_loss,
        )
        n_batches = math.ceil(len(self.data.train_examples) / train_spec.batch_size)
        if train_spec.drop_last_window:
            self.steps_per_epoch = n_batches // train_spec.accumulation
            if self.steps_per_epoch == 0:
                raise ValueError(
                    f"train.batch_size x train.accumulation = {train_spec.effective_batch} "
                    f"exceeds the {len(self.data.train_examples)} training samples; lower them or "
                    "set train.drop_last_window: false"
                )
        else:
            self.steps_per_epoch = math.ceil(n_batches / train_spec.accumulation)
        self.metrics["train/effective_lr"] = train_spec.effective_lr
        self.metrics["train/effective_batch"] = float(train_spec.effective_batch)
        self.metrics["train/steps"] = float(self.steps_per_epoch * train_spec.epochs)
        if self.ctx.attempt > 1:
            self._resume()
        self.metrics["time/setup_s"] = time.perf_counter() - t0

    def _plan_micro_batch(self) -> None:
        """Choose this attempt's micro-batch: the spec's, ``auto``'s, then split after OOMs.

        The windows (what each step trains on, hence the run id) never change; only how many
        samples a forward pass takes. The worker sets ``ctx.micro_batch_divisor`` from the run's
        out-of-memory history.

        Raises:
            BatchCannotShrink: out of memory earlier at micro-batch 1.
        """
        train = self.cfg.train
        requested = train.micro_batch if train.micro_batch is not None else train.batch_size
        if requested == "auto":
            from ablate.model.sizing import estimate_gpu_memory_gib

            seq = self.cfg.data.max_seq_len + len(self.model.taps)
            requested = auto_micro_batch(
                train.effective_batch,
                self.device,
                lambda k: estimate_gpu_memory_gib(self.cfg.model, self.cfg.adapter, k, seq),
            )
        micro = min(int(requested), train.effective_batch)
        divisor = max(1, int(self.ctx.micro_batch_divisor))
        if divisor > 1:
            if micro < divisor:
                raise BatchCannotShrink(
                    f"out of memory at micro-batch {max(1, micro * 2 // divisor)} in earlier "
                    f"attempts: micro-batch {micro} cannot be split {divisor} ways (quantise, "
                    "turn on train.gradient_checkpointing, or use a larger GPU)"
                )
            micro //= divisor
            logger.info("attempt %d: micro-batch %d after out-of-memory", self.ctx.attempt, micro)
        self.micro_batch = micro
        self.ctx.batch_plan = (micro, math.ceil(train.effective_batch / micro), divisor)
        self.metrics["train/micro_batch"] = float(micro)
        self.metrics["train/packed"] = float(train.pack)

    def _encode_data(self) -> None:
        encode_splits(self.data, self.cfg.data, self.model.tokenizer, len(self.model.taps))
        self.metrics.update(self.data.metrics)
        from ablate.data.image_cache import ImageCache
        from ablate.data.scienceqa import cache_dir

        # decoded, resized uint8 images (normalised on the device with the train or eval
        # statistics); on disk for real data, so DataLoader workers and later runs decode once
        on_disk = self.cfg.data.dataset != "synthetic"
        self.load_image = ImageCache(
            self.model.image_resize,
            directory=cache_dir() / "images" if on_disk else None,
            max_bytes=0 if on_disk and self.cfg.train.num_workers else None,
        )

    def _resume(self) -> None:
        payload = load_checkpoint(self.ctx.run_dir)
        if payload is None:
            logger.info("attempt %d: no usable checkpoint, starting over", self.ctx.attempt)
            return
        self.model.load_trainable_state_dict(
            {k: v.to(self.device) for k, v in payload["trainable"].items()}
        )
        self.optimizer.load_state_dict(payload["optimizer"])
        extra = payload["extra"]
        if self.scaler is not None and extra.get("scaler"):
            self.scaler.load_state_dict(extra["scaler"])
        self.history = extra.get("history", self.history)
        self._loss_sum = float(extra.get("loss_sum", 0.0))
        self._loss_count = int(extra.get("loss_count", 0))
        self.step.nan_skipped = int(extra.get("nan_skipped", 0))
        self.position = payload["position"]
        saved_micro = int(extra.get("micro_batch", self.cfg.train.batch_size))
        if saved_micro != self.cfg.train.batch_size and self.position.batch_in_epoch:
            # a mid-epoch checkpoint taken at another micro-batch: resume at the same sample
            # (exact for plain shuffling; length-grouped epochs regroup, so nearly the same)
            done = self.position.batch_in_epoch * saved_micro // self.cfg.train.batch_size
            self.position = dataclasses.replace(self.position, batch_in_epoch=done)
        restore_rng_state(payload["rng"])
        self.metrics["train/resumed_from_step"] = float(self.position.step)
        logger.info("attempt %d: resumed at %s", self.ctx.attempt, self.position)

    # ----------------------------------------------------------------- train
    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(torch.device(self.device).type, dtype=self.autocast_dtype)

    def _checkpoint(self, position: TrainPosition) -> None:
        extra = {
            "history": self.history,
            "loss_sum": self._loss_sum,
            "loss_count": self._loss_count,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "micro_batch": self.cfg.train.batch_size,
            "nan_skipped": self.step.nan_skipped,
        }
        save_checkpoint(
            self.ctx.run_dir,
            trainable=self.model.trainable_state_dict(),
            optimizer=self.optimizer.state_dict(),
            position=position,
            extra=extra,
        )
        self.position = position

    def train(self) -> None:
        """Run the remaining epochs, checkpointing after each and on a stop request."""
        t0 = time.perf_counter()
        spec = self.cfg.train
        total_windows = self.steps_per_epoch * spec.epochs
        throughput = Throughput(self.device, self.model)
        side_s = 0.0
        step = self.position.step
        for epoch in range(self.position.epoch, spec.epochs):
            windows = epoch_windows(self.data.train_lengths, spec, seed=self.spec.seed, epoch=epoch)
            windows = windows[: self.steps_per_epoch]
            first = 0
            if epoch == self.position.epoch:  # checkpoints sit on window boundaries
                first = self.position.batch_in_epoch // spec.accumulation
            if first == 0:
                self._loss_sum, self._loss_count = 0.0, 0
            self.model.train()
            shown = {"epoch": epoch + 1, "epochs": spec.epochs}  # beside the phase, 1-based
            if first < len(windows):  # else resumed after this epoch's training, before its val
                for w, batches in enumerate(self._window_batches(windows, first, epoch), first):
                    lr = lr_at_step(step, self.steps_per_epoch, spec)
                    set_learning_rate(self.optimizer, lr)
                    loss = self._train_window(batches, len(windows[w]), throughput)
                    step += 1
                    if step % spec.log_every == 0:
                        self.ctx.log_metrics(step, {"train/loss": loss, "train/lr": lr})
                    if self.ctx.should_stop():
                        self._checkpoint(TrainPosition(epoch, (w + 1) * spec.accumulation, step))
                        raise JobCancelled(f"stopped at step {step}; checkpoint saved")
                    done = epoch * self.steps_per_epoch + w + 1
                    self.ctx.report_progress(done, total_windows, "train", loss=loss, **shown)
            epoch_loss = self._loss_sum / max(self._loss_count, 1)
            if len(self.history["epoch_loss"]) <= epoch:
                self.history["epoch_loss"].append(epoch_loss)
            epoch_metrics = {"train/epoch_loss": epoch_loss, "train/epoch": float(epoch + 1)}
            if spec.eval_every_epoch and epoch + 1 < spec.epochs:
                # the epoch's training is saved first: a stop during validation resumes here
                t_ckpt = time.perf_counter()
                self._checkpoint(TrainPosition(epoch, len(windows) * spec.accumulation, step))
                side_s += time.perf_counter() - t_ckpt
                val = self._evaluate(
                    self.cfg.data.val_split, spec.eval_every_epoch_max_questions, shown
                )
                side_s += val.seconds
                self.history["val_acc"].append(val.table["Avg"])
                epoch_metrics["val/epoch_Avg"] = float(val.table["Avg"])
            self.ctx.log_metrics(step, epoch_metrics)
            t_ckpt = time.perf_counter()
            self._checkpoint(TrainPosition(epoch + 1, 0, step))
            side_s += time.perf_counter() - t_ckpt
        self.metrics["train/loss"] = (
            self.history["epoch_loss"][-1] if self.history["epoch_loss"] else float("nan")
        )
        elapsed = time.perf_counter() - t0
        self.metrics["time/train_s"] = elapsed
        self.metrics["time/epoch_eval_and_checkpoint_s"] = side_s
        # throughput of training alone (per-epoch validation and checkpoints excluded)
        self.metrics.update(throughput.metrics(elapsed - side_s))

    def _window_batches(self, windows: list[list[int]], first: int, epoch: int) -> Any:
        """Yield each window's laid-out micro-batches, on the device, from ``first`` on.

        One DataLoader over every micro-batch of the remaining windows (workers keep ahead of the
        GPU across window boundaries), regrouped by window here.
        """
        spec = self.cfg.train
        lengths = self.data.train_lengths
        cuts = [split_window(window, lengths, self.micro_batch) for window in windows[first:]]
        collate = functools.partial(
            collate_layout,
            pad_id=self.model.tokenizer.pad_token_id,
            load_image=self.load_image,
            n_visual=len(self.model.taps),
            layout="pack" if spec.pack else "pad",
            um_slot=not self.cfg.model.isolate_modality_token,
        )
        on_cuda = torch.device(self.device).type == "cuda"
        loader = layout_loader(
            self.data.train_examples,
            [mb for cut in cuts for mb in cut],
            collate,
            num_workers=spec.num_workers,
            pin_memory=spec.pin_memory and on_cuda,
            seed=self.spec.seed * 1_000_003 + epoch,
        )
        batches = iter(loader)
        for cut in cuts:
            yield [self._to_device(next(batches)) for _ in cut]

    def _to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        images = batch["images"]
        return {
            "layout": batch["layout"].to(self.device, non_blocking=True),
            "images": images.to(self.device, non_blocking=True) if images is not None else None,
        }

    def _train_window(
        self, micro_batches: list[dict[str, Any]], window_samples: int, throughput: Throughput
    ) -> float:
        """One optimiser step (:class:`~ablate.train.step.WindowStep`); the window's mean loss."""
        try:
            result = self.step(micro_batches, window_samples, throughput)
        except FloatingPointError as exc:
            raise FloatingPointError(f"{exc} at {self.position}") from None
        if self.step.nan_skipped:
            self.metrics["train/nan_skipped"] = float(self.step.nan_skipped)
        self._loss_sum += result.loss_sum
        self._loss_count += result.samples
        return result.loss

    # -------------------------------------------------------------- evaluate
    def _evaluate(
        self, split: str, max_questions: int | None = None, shown: dict[str, int] | None = None
    ) -> Any:
        """Generate and score ``split``; progress as ``validate`` or ``test`` (+ ``shown``)."""
        from ablate.evaluation.generate import evaluate_split

        phase = "test" if split == self.cfg.data.test_split else "validate"
        info = shown or {}
        return evaluate_split(
            self.model,
            self.data.problems[split],
            self.data.examples[split],
            self.cfg.eval,
            split=split,
            seed=self.spec.seed,
            device=self.device,
            load_image=self.load_image,
            autocast=self._autocast,
            max_questions=max_questions,
            progress=lambda done, total: self.ctx.report_progress(done, total, phase, **info),
            should_stop=self.ctx.should_stop,
        )

    def evaluate(self) -> dict[str, float]:
        """Save the adapter, evaluate validation and test splits, write predictions; all metrics."""
        from ablate.evaluation.generate import write_predictions

        self._save_adapter()
        t0 = time.perf_counter()
        data = self.cfg.data
        for key, split in (("val", data.val_split), ("test", data.test_split)):
            result = self._evaluate(split)
            write_predictions(self.ctx.run_dir / f"predictions_{split}.jsonl", result)
            for name, value in result.metrics().items():
                self.metrics[key + name[len(split) :]] = value
            self.metrics[f"time/eval_{key}_s"] = result.seconds
            self.metrics[f"speed/{key}_questions_per_s"] = len(result.rows) / result.seconds
        if self.history["val_acc"]:
            self.metrics["val/best_epoch_Avg"] = max(
                [*self.history["val_acc"], self.metrics["val/Avg"]]
            )
        self.metrics["time/eval_s"] = time.perf_counter() - t0
        self.ctx.log_metrics(self.position.step, self.metrics)
        return self.metrics

    def _save_adapter(self) -> Path:
        from safetensors.torch import save_file

        state = {
            k: v.detach().cpu().contiguous() for k, v in self.model.trainable_state_dict().items()
        }
        from ablate.model.build import model_record

        metadata = {  # safetensors metadata: str -> str
            "run_id": str(getattr(self.spec, "run_id", "")),
            "model": json.dumps(model_record(self.model), sort_keys=True),
        }
        return write_atomic_with(
            self.ctx.run_dir / ADAPTER_FILE,
            lambda tmp: save_file(state, str(tmp), metadata=metadata),
        )

    # --------------------------------------------------------------- cleanup
    def cleanup(self) -> None:
        """Drop the model and optimiser and return cached accelerator memory."""
        for name in ("optimizer", "model", "trainable"):
            if hasattr(self, name):
                delattr(self, name)
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def run_mmt(spec: Any, ctx: JobContext) -> dict[str, float]:
    """Train and evaluate one ``mmt`` run; the job kind's registered entry point.

    Returns:
        Metrics: ``test/Avg``, ``test/NAT`` ... ``test/unparseable``, ``val/Avg`` ...,
        ``train/loss``, ``train/effective_lr``, ``train/effective_batch``,
        ``speed/*`` (throughput; ``speed/gpu_hours``: training plus evaluation),
        ``train/trainable_params``, ``data/truncated``, ``time/*_s``.
        Accuracies are percentages (0-100).

    Raises:
        JobCancelled: the worker asked the job to stop; a checkpoint was saved first.
    """
    t0 = time.perf_counter()
    ctx.run_dir.mkdir(parents=True, exist_ok=True)
    recipe = MmtRecipe(spec, ctx)
    try:
        recipe.setup()
        recipe.train()
        metrics = recipe.evaluate()
    finally:
        recipe.cleanup()
    metrics["time/total_s"] = time.perf_counter() - t0
    metrics["speed/gpu_hours"] = measured_hours(metrics) or 0.0  # what `ablate report` shows
    return metrics
