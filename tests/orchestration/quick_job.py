"""``quick-fit``: a tiny real least-squares fit in numpy, for orchestration tests.

Same role as ``linear-fit`` (real gradient steps on seeded data, checkpoints, honours stop
requests) but without importing torch, so a worker subprocess starts in a fraction of a second.
Fault knobs let tests make a worker fail, die without a record, or ignore stop requests.
Workers import it through ``ABLATE_JOB_MODULES=quick_job`` (its folder on ``PYTHONPATH``).
"""

from __future__ import annotations

import json
import os
import signal
import time

import numpy as np
from pydantic import Field

from ablate.errors import ConfigError, JobCancelled
from ablate.jobs.context import JobContext
from ablate.spec.base import SpecModel, nonsemantic
from ablate.spec.job_kinds import JobKind, register_job


class QuickFit(SpecModel):
    """Knobs of the quick fit."""

    steps: int = Field(20, ge=1)
    """Gradient steps."""
    lr: float = Field(0.1, gt=0)
    """Step size."""
    sleep_per_step: float = Field(0.0, ge=0)
    """Seconds to sleep each step (makes a run long enough to interrupt)."""
    fail_attempts: int = Field(0, ge=0)
    """Raise on attempts 1..fail_attempts."""
    die_attempts: int = Field(0, ge=0)
    """SIGKILL itself (no record) on attempts 1..die_attempts."""
    ignore_stop: bool = False
    """Never look at the stop flag (tests the grace period and SIGKILL)."""
    needs_file: str | None = nonsemantic()
    """A file the run reads (like ``data.root``): missing, the run fails with a config error."""


class QuickConfig(SpecModel):
    """Sections of a ``quick-fit`` run."""

    fit: QuickFit = QuickFit()


def run_quick_fit(spec, ctx: JobContext) -> dict[str, float]:
    """Fit y = X w by gradient descent; resume from ``state.json`` on a later attempt."""
    cfg: QuickFit = spec.config.fit
    rng = np.random.default_rng(spec.seed)
    x = rng.normal(size=(64, 4))  # (N, F)
    y = x @ rng.normal(size=4)  # (N,)
    state_path = ctx.run_dir / "state.json"
    if cfg.needs_file is not None and not os.path.isfile(cfg.needs_file):
        raise ConfigError(f"fit.needs_file={cfg.needs_file!r} is not there")
    w, start = np.zeros(4), 0
    if state_path.exists():
        state = json.loads(state_path.read_text())
        w, start = np.array(state["w"]), state["step"]
    if ctx.attempt <= cfg.die_attempts:
        os.kill(os.getpid(), signal.SIGKILL)
    for step in range(start, cfg.steps):
        if ctx.should_stop() and not cfg.ignore_stop:
            state_path.write_text(json.dumps({"w": w.tolist(), "step": step}))
            raise JobCancelled(f"stopped at step {step}")
        if step == cfg.steps // 2 and ctx.attempt <= cfg.fail_attempts:
            raise RuntimeError(f"injected failure (attempt {ctx.attempt})")
        grad = 2 * x.T @ (x @ w - y) / len(y)
        w = w - cfg.lr * grad
        ctx.report_progress(step + 1, cfg.steps)
        ctx.log_metrics(step, {"grad_norm": float(np.linalg.norm(grad))})
        if cfg.sleep_per_step:
            time.sleep(cfg.sleep_per_step)
    mse = float(np.mean((x @ w - y) ** 2))
    return {"mse": mse, "steps_run": float(cfg.steps - start), "pid": float(os.getpid())}


register_job(JobKind(name="quick-fit", config_cls=QuickConfig, run="quick_job:run_quick_fit"))
