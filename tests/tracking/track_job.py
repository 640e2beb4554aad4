"""``track-fit``: a numpy job that logs step metrics and writes predictions, for tracking tests.

No torch, so a worker subprocess starts fast. Registered in workers through
``ABLATE_JOB_MODULES=track_job`` (its folder on ``PYTHONPATH``). Its step metrics reach MLflow
through ``ctx.log_metrics`` into ``metrics.jsonl``, which the tracker syncs to MLflow.
"""

from __future__ import annotations

import json
import time

import numpy as np
from pydantic import Field

from ablate.jobs.context import JobContext
from ablate.spec.base import SpecModel
from ablate.spec.job_kinds import JobKind, register_job


class TrackFit(SpecModel):
    """Knobs."""

    steps: int = Field(10, ge=1)
    """Steps (one metric line each)."""
    fail_attempts: int = Field(0, ge=0)
    """Raise at the end of attempts 1..fail_attempts."""
    sleep_per_step: float = Field(0.0, ge=0)
    """Seconds per step."""


class TrackConfig(SpecModel):
    """Sections."""

    fit: TrackFit = TrackFit()


def run_track_fit(spec, ctx: JobContext) -> dict[str, float]:
    """Log ``train/loss`` per step, write predictions_test.jsonl, return test metrics."""
    cfg: TrackFit = spec.config.fit
    rng = np.random.default_rng(spec.seed)
    for step in range(cfg.steps):
        metrics = {"train/loss": 1.0 / (step + 1), "train/lr": 0.1}
        ctx.log_metrics(step, metrics)
        if cfg.sleep_per_step:
            time.sleep(cfg.sleep_per_step)
    correct = rng.random(50) < 0.7
    with (ctx.run_dir / "predictions_test.jsonl").open("w") as fh:
        for q, ok in enumerate(correct):
            fh.write(
                json.dumps(
                    {"pid": str(q), "pred": 0, "raw": "x", "parsed": True, "correct": bool(ok)}
                )
                + "\n"
            )
    if ctx.attempt <= cfg.fail_attempts:
        raise RuntimeError(f"injected failure (attempt {ctx.attempt})")
    acc = 100.0 * correct.mean()
    return {"test/Avg": acc, "test/NAT": acc, "val/Avg": acc - 1}


register_job(JobKind(name="track-fit", config_cls=TrackConfig, run="track_job:run_track_fit"))
