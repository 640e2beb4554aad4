"""``linear-fit``: a small real job for debugging the spine (executors, store, retries, signals).

It fits a linear regression with real gradients (torch, SGD) on data drawn from the run's seed, so
the orchestration machinery can be exercised in seconds without transformers or weights. It also
carries a few opt-in fault-injection fields (``debug.*``) that the reliability tests use; they are
semantic (they change what the run does), so they are part of the run id.
"""

from __future__ import annotations

import io
import time

from pydantic import Field

from ablate.errors import JobCancelled
from ablate.jobs.context import JobContext
from ablate.spec.base import SpecModel
from ablate.spec.job_kinds import JobKind, register_job
from ablate.store.run_folder import (
    CheckpointInvalid,
    read_checkpoint_bytes,
    write_checkpoint_bytes,
)


class LinearData(SpecModel):
    """Synthetic regression data y = X w* + noise, drawn from the run seed."""

    n_samples: int = Field(256, ge=8)
    """Number of samples (80% train, 20% held out)."""
    n_features: int = Field(8, ge=1)
    """Input width."""
    noise: float = Field(0.1, ge=0.0)
    """Standard deviation of the label noise."""


class LinearTrain(SpecModel):
    """SGD schedule."""

    steps: int = Field(200, ge=1)
    """Optimisation steps."""
    lr: float = Field(0.05, gt=0.0)
    """Learning rate."""
    batch_size: int = Field(32, ge=1)
    """Mini-batch size (the effective batch: after an OOM, retries split it into micro-batches)."""
    checkpoint_every: int = Field(50, ge=1)
    """Steps between checkpoints (a retried attempt resumes from the last one)."""


class LinearDebug(SpecModel):
    """Fault injection for tests; all off by default."""

    sleep_per_step: float = Field(0.0, ge=0.0)
    """Seconds to sleep each step (makes a run long enough to interrupt)."""
    fail_at_step: int | None = None
    """Raise an error at this step..."""
    fail_attempts: int = Field(1, ge=0)
    """...on attempts 1..fail_attempts only (so a retry can succeed)."""
    oom_at_step: int | None = None
    """Raise ``torch.OutOfMemoryError`` at this step (simulated CUDA OOM, also on CPU)..."""
    oom_above_micro_batch: int = Field(0, ge=0)
    """...while the micro-batch is larger than this (0: at every size, so it cannot recover)."""


class LinearFitConfig(SpecModel):
    """Sections of a ``linear-fit`` run."""

    data: LinearData = LinearData()
    train: LinearTrain = LinearTrain()
    debug: LinearDebug = LinearDebug()


def run_linear_fit(spec, ctx: JobContext) -> dict[str, float]:
    """Fit the regression, checkpointing so that a retried attempt resumes.

    Returns:
        ``train/loss`` (last mini-batch MSE), ``eval/mse`` and ``eval/r2`` on held-out data,
        ``train/steps_run`` (steps executed by this attempt, less than ``steps`` after a resume).
    """
    import torch

    cfg: LinearFitConfig = spec.config
    gen = torch.Generator().manual_seed(spec.seed)
    x = torch.randn(cfg.data.n_samples, cfg.data.n_features, generator=gen)  # (N, F)
    w_true = torch.randn(cfg.data.n_features, 1, generator=gen)  # (F, 1)
    y = x @ w_true + cfg.data.noise * torch.randn(cfg.data.n_samples, 1, generator=gen)
    n_train = int(0.8 * cfg.data.n_samples)
    model = torch.nn.Linear(cfg.data.n_features, 1)
    torch.nn.init.zeros_(model.weight)
    torch.nn.init.zeros_(model.bias)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.train.lr)
    fresh_model = {k: v.clone() for k, v in model.state_dict().items()}
    fresh_rng = gen.get_state()
    start = 0
    try:
        found = read_checkpoint_bytes(ctx.run_dir)
    except CheckpointInvalid as exc:
        print(f"[linear-fit] ignoring checkpoint in {ctx.run_dir}: {exc}", flush=True)
        found = None
    if found is not None:
        try:
            state = torch.load(io.BytesIO(found[0]), weights_only=True)
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["opt"])
            gen.set_state(state["rng"])
            start = int(state["step"])
        except Exception as exc:  # noqa: BLE001 - verified but not loadable: start over
            print(f"[linear-fit] ignoring unloadable checkpoint: {exc!r}", flush=True)
            model.load_state_dict(fresh_model)
            opt = torch.optim.SGD(model.parameters(), lr=cfg.train.lr)
            gen.set_state(fresh_rng)
            start = 0

    def checkpoint(step: int) -> None:
        buffer = io.BytesIO()
        torch.save(
            {
                "model": model.state_dict(),
                "opt": opt.state_dict(),
                "step": step,
                "rng": gen.get_state(),
            },
            buffer,
        )
        write_checkpoint_bytes(ctx.run_dir, buffer.getvalue(), step=step)

    micro, accumulation = ctx.micro_batch(cfg.train.batch_size)
    loss = torch.tensor(float("nan"))
    for step in range(start, cfg.train.steps):
        if ctx.should_stop():
            checkpoint(step)
            raise JobCancelled(f"stopped at step {step}")
        if cfg.debug.fail_at_step == step and ctx.attempt <= cfg.debug.fail_attempts:
            raise RuntimeError(f"injected failure at step {step} (attempt {ctx.attempt})")
        if cfg.debug.oom_at_step == step and micro > cfg.debug.oom_above_micro_batch:
            raise torch.OutOfMemoryError(
                f"CUDA out of memory (simulated) at step {step}, micro-batch {micro}"
            )
        idx = torch.randint(0, n_train, (cfg.train.batch_size,), generator=gen)
        opt.zero_grad()
        loss = torch.zeros(())
        for chunk in idx.split(micro):  # same samples and mean gradient at any micro-batch
            part = torch.nn.functional.mse_loss(model(x[chunk]), y[chunk]) / accumulation
            part.backward()
            loss = loss + part.detach()
        opt.step()
        if (step + 1) % cfg.train.checkpoint_every == 0:
            checkpoint(step + 1)
        ctx.log_metrics(step, {"train/loss": loss.item()})
        ctx.report_progress(step + 1, cfg.train.steps)
        if cfg.debug.sleep_per_step:
            time.sleep(cfg.debug.sleep_per_step)
    with torch.no_grad():
        pred = model(x[n_train:])
        target = y[n_train:]
        mse = float(torch.mean((pred - target) ** 2))
        r2 = 1.0 - mse / max(float(torch.var(target, unbiased=False)), 1e-12)
    return {
        "train/loss": loss.item(),
        "eval/mse": mse,
        "eval/r2": r2,
        "train/steps_run": float(cfg.train.steps - start),
    }


register_job(
    JobKind(
        name="linear-fit", config_cls=LinearFitConfig, run="ablate.jobs.linear_fit:run_linear_fit"
    )
)
