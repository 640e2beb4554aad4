"""What a running job may ask of the worker that hosts it.

A job is a function ``run(spec, ctx) -> metrics``. It reads everything it needs from the
:class:`~ablate.spec.run_spec.RunSpec` and talks to the outside world only through this context:
where to write (``run_dir``), which attempt it is (to resume from a checkpoint), progress for the
live display, per-step metrics for tracking, and whether it has been asked to stop (SIGTERM,
Ctrl-C, preemption) so it can checkpoint and leave cleanly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ablate.errors import BatchCannotShrink
from ablate.store.run_folder import write_progress


@dataclass
class JobContext:
    """The worker side of a job: paths, attempt, device, progress and stop requests.

    Attributes:
        run_dir: the run's own folder (``runs/<sweep>/<run_id>/``); the job writes only here.
        attempt: 1-based attempt number; attempts > 1 should resume from ``run_dir`` checkpoints.
        device: torch device string chosen by the worker (``cuda`` or ``cpu``).
        metric_sink: receives ``(step, metrics)`` for tracking (MLflow or a null sink).
        stop_flag: returns True once the worker was asked to stop.
        micro_batch_divisor: set by the worker after out-of-memory attempts of this run (2, 4,
            ...); jobs split each batch by it through :meth:`micro_batch`, so a retry fits in
            memory with the same effective batch and the same run id.
        batch_plan: ``(micro_batch, accumulation, divisor)`` once the job called
            :meth:`micro_batch`; the worker records it.
    """

    run_dir: Path
    attempt: int = 1
    device: str = "cpu"
    metric_sink: Callable[[int, dict[str, float]], None] | None = None
    stop_flag: Callable[[], bool] = field(default=lambda: False)
    micro_batch_divisor: int = 1
    batch_plan: tuple[int, int, int] | None = None
    _last_progress_write: float = field(default=0.0, repr=False)

    def should_stop(self) -> bool:
        """Whether the job should checkpoint and raise :class:`JobCancelled` now."""
        return self.stop_flag()

    def micro_batch(self, batch_size: int, accumulation: int = 1) -> tuple[int, int]:
        """The ``(micro_batch, accumulation)`` to run, keeping ``batch_size x accumulation``.

        Raises:
            BatchCannotShrink: ``batch_size`` is not divisible by the divisor (the micro-batch
                would drop below 1 or change the effective batch).
        """
        divisor = max(1, int(self.micro_batch_divisor))
        if batch_size % divisor:
            raise BatchCannotShrink(
                f"out of memory at micro-batch {max(1, batch_size * 2 // divisor)} in earlier "
                f"attempts and micro-batch {batch_size} cannot be split {divisor} ways: cannot "
                f"shrink further (lower the batch size, quantise, or use a larger GPU)"
            )
        self.batch_plan = (batch_size // divisor, accumulation * divisor, divisor)
        return self.batch_plan[0], self.batch_plan[1]

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
        write_progress(self.run_dir, payload)
