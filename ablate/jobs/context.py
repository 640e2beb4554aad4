"""What a running job may ask of the worker that hosts it.

A job is a function ``run(spec, ctx) -> metrics``. It reads everything it needs from the
:class:`~ablate.spec.run_spec.RunSpec` and talks to the outside world only through this context:
where to write (``run_dir``), which attempt it is (to resume from a checkpoint), progress for the
live display, per-step metrics for tracking, and whether it has been asked to stop (SIGTERM,
Ctrl-C, preemption) so it can checkpoint and leave cleanly.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


class JobCancelled(Exception):
    """Raised by a job that stopped because it was asked to (the attempt is recorded cancelled)."""


@dataclass
class JobContext:
    """The worker side of a job: paths, attempt, device, progress and stop requests.

    Attributes:
        run_dir: the run's own folder (``runs/<sweep>/<run_id>/``); the job writes only here.
        attempt: 1-based attempt number; attempts > 1 should resume from ``run_dir`` checkpoints.
        device: torch device string chosen by the worker (``cuda`` or ``cpu``).
        metric_sink: receives ``(step, metrics)`` for tracking (MLflow or a null sink).
        stop_flag: returns True once the worker was asked to stop.
    """

    run_dir: Path
    attempt: int = 1
    device: str = "cpu"
    metric_sink: Callable[[int, dict[str, float]], None] | None = None
    stop_flag: Callable[[], bool] = field(default=lambda: False)
    _last_progress_write: float = field(default=0.0, repr=False)

    def should_stop(self) -> bool:
        """Whether the job should checkpoint and raise :class:`JobCancelled` now."""
        return self.stop_flag()

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        """Record per-step metrics (loss, lr, accuracy) for tracking."""
        if self.metric_sink is not None:
            self.metric_sink(step, metrics)

    def report_progress(self, step: int, total: int, phase: str = "train", **info: float) -> None:
        """Tell the orchestrator's live display how far this run is (at most twice a second).

        Written atomically to ``run_dir/progress.json``; the orchestrator polls it.
        """
        now = time.monotonic()
        if step < total and now - self._last_progress_write < 0.5:
            return
        self._last_progress_write = now
        payload = {"step": step, "total": total, "phase": phase, "time": time.time(), **info}
        tmp = self.run_dir / f".progress.json.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(payload))
        os.replace(tmp, self.run_dir / "progress.json")
