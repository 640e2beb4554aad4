"""Progress of a running sweep: a live rich display on a terminal, plain log lines elsewhere.

The orchestrator reports events (attempt started / finished, messages) and, every loop tick, a
:class:`SweepStatus` snapshot: done / running / failed / left, an ETA from the mean duration of the
attempts finished so far, and each running run's step read from its ``progress.json``. The live
display redraws from the snapshot; the plain display prints one line per event plus a summary
line at most every ``interval_s`` seconds, so a log file stays readable.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ablate.orchestrate.outcomes import SweepResult
    from ablate.orchestrate.plan import Plan, PlanEntry
    from ablate.store.record import AttemptRecord


@dataclass(frozen=True)
class RunningView:
    """One running attempt, as the display shows it."""

    run_id: str
    attempt: int
    axes: dict[str, Any]
    slot: str
    started_at: float
    progress_file: Path
    label: str | None = None

    def step(self) -> dict[str, Any] | None:
        """The job's last reported progress (``step``, ``total``, ``phase``), if any."""
        try:
            data = json.loads(self.progress_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("time", 0) < self.started_at - 1:
            return None  # left over from an earlier attempt
        return data


@dataclass(frozen=True)
class SweepStatus:
    """A snapshot of a sweep in progress."""

    sweep: str
    total: int
    done: int
    failed: int
    exhausted: int
    left: int
    running: list[RunningView] = field(default_factory=list)
    eta_s: float | None = None
    elapsed_s: float = 0.0
    stopping: bool = False

    def summary(self) -> str:
        """``done 3/10, running 2, failed 1, left 4, ETA 2m10s``."""
        text = (
            f"done {self.done}/{self.total}, running {len(self.running)}, "
            f"failed {self.failed}, left {self.left}"
        )
        if self.exhausted:
            text += f", gave up {self.exhausted}"
        text += f", elapsed {format_seconds(self.elapsed_s)}"
        if self.eta_s is not None:
            text += f", ETA {format_seconds(self.eta_s)}"
        return text + (" (stopping)" if self.stopping else "")


def format_seconds(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h10m``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def _axes_text(axes: dict[str, Any], label: str | None = None, width: int = 60) -> str:
    text = " ".join(f"{k}={v}" for k, v in axes.items())
    if label:
        text = f"[{label}] {text}" if text else f"[{label}]"
    return text if len(text) <= width else text[: width - 1] + "…"


class SweepProgress:
    """Base display: every hook does nothing (the null display)."""

    def start(self, plan: Plan) -> None:
        """The plan is made; dispatch starts."""

    def attempt_started(self, entry: PlanEntry, attempt: int, slot: str) -> None:
        """An attempt was dispatched."""

    def attempt_finished(self, entry: PlanEntry, record: AttemptRecord, retry: bool) -> None:
        """An attempt ended and is recorded (``retry``: it will be tried again)."""

    def message(self, text: str) -> None:
        """A one-line notice (signals, waits, timeouts)."""

    def tick(self, status: SweepStatus) -> None:
        """Called every loop iteration with the current snapshot."""

    def finish(self, result: SweepResult) -> None:
        """The sweep loop has ended."""


class NullProgress(SweepProgress):
    """Shows nothing (library use, tests)."""


class PlainProgress(SweepProgress):
    """Timestamped log lines: one per event, a status line at most every ``interval_s``.

    Args:
        stream: where to write (default stdout).
        interval_s: minimum seconds between periodic status lines.
    """

    def __init__(self, stream: IO[str] | None = None, interval_s: float = 30.0) -> None:
        self.stream = stream or sys.stdout
        self.interval_s = interval_s
        self._last = 0.0
        self._sweep = ""

    def _line(self, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        self.stream.write(f"{stamp} [{self._sweep}] {text}\n")
        self.stream.flush()

    def start(self, plan: Plan) -> None:
        """Show the plan summary."""
        self._sweep = plan.sweep.name
        counts = ", ".join(f"{k} {v}" for k, v in plan.counts.items() if v)
        self._line(f"{len(plan.entries)} runs ({counts}); {len(plan.to_dispatch())} to dispatch")
        self._last = time.monotonic()

    def attempt_started(self, entry: PlanEntry, attempt: int, slot: str) -> None:
        """Show a dispatched attempt."""
        axes = _axes_text(entry.run.axes, getattr(entry.run, "label", None))
        self._line(f"start  {entry.run_id} attempt {attempt} on {slot}  {axes}")

    def attempt_finished(self, entry: PlanEntry, record: AttemptRecord, retry: bool) -> None:
        """Show an ended attempt."""
        took = format_seconds(record.duration_s or 0.0)
        text = f"{record.status.value:<7} {entry.run_id} attempt {record.attempt} in {took}"
        if record.failure_reason:
            text += f": {record.failure_reason.splitlines()[0][:160]}"
        if retry:
            text += " (will retry)"
        self._line(text)

    def message(self, text: str) -> None:
        """Show a notice."""
        self._line(text)

    def tick(self, status: SweepStatus) -> None:
        """Refresh from the snapshot."""
        now = time.monotonic()
        if now - self._last >= self.interval_s:
            self._last = now
            self._line(status.summary())

    def finish(self, result: SweepResult) -> None:
        """Show the final summary."""
        self._line(result.summary())


class RichProgress(SweepProgress):
    """A live table redrawn in place (terminals only).

    Args:
        console: a ``rich.console.Console`` (default: stdout).
        refresh_per_second: redraw rate.
    """

    def __init__(self, console: Any = None, refresh_per_second: float = 4.0) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = console or Console()
        self._live = Live(
            console=self.console, refresh_per_second=refresh_per_second, transient=False
        )
        self._status: SweepStatus | None = None
        self._events: list[str] = []

    def start(self, plan: Plan) -> None:
        """Show the plan summary."""
        counts = ", ".join(f"{k} {v}" for k, v in plan.counts.items() if v)
        self.console.print(
            f"[bold]{plan.sweep.name}[/]: {len(plan.entries)} runs ({counts}); "
            f"{len(plan.to_dispatch())} to dispatch"
        )
        self._live.start()

    def _event(self, text: str) -> None:
        self._live.console.print(text, highlight=False)

    def attempt_started(self, entry: PlanEntry, attempt: int, slot: str) -> None:
        """Show a dispatched attempt."""
        self._event(f"[cyan]start[/]   {entry.run_id} attempt {attempt} on {slot}")

    def attempt_finished(self, entry: PlanEntry, record: AttemptRecord, retry: bool) -> None:
        """Show an ended attempt."""
        colour = {"success": "green", "failed": "red", "cancelled": "yellow"}[record.status.value]
        took = format_seconds(record.duration_s or 0.0)
        text = f"[{colour}]{record.status.value:<9}[/] {entry.run_id} attempt {record.attempt}"
        text += f" in {took}"
        if record.failure_reason:
            reason = record.failure_reason.splitlines()[0][:120]
            text += f": {reason}"
        if retry:
            text += " (will retry)"
        self._event(text)

    def message(self, text: str) -> None:
        """Show a notice."""
        self._event(f"[bold yellow]{text}[/]")

    def tick(self, status: SweepStatus) -> None:
        """Refresh from the snapshot."""
        self._status = status
        self._live.update(self._render(status))

    def _render(self, status: SweepStatus) -> Any:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        head = Text(status.summary(), style="bold")
        table = Table(box=None, pad_edge=False, show_header=bool(status.running))
        for column in ("run", "slot", "attempt", "step", "time", "axes"):
            table.add_column(column)
        now = time.time()
        for view in status.running:
            step = view.step()
            step_text = f"{step['step']}/{step['total']}" if step and "total" in step else "-"
            table.add_row(
                view.run_id,
                view.slot,
                str(view.attempt),
                step_text,
                format_seconds(now - view.started_at),
                _axes_text(view.axes, view.label, width=50),
            )
        return Group(head, table)

    def finish(self, result: SweepResult) -> None:
        """Show the final summary."""
        if self._status is not None:
            self._live.update(self._render(self._status))
        self._live.stop()
        style = "yellow" if result.interrupted else "green"
        self.console.print(result.summary(), style=style, highlight=False, markup=False)


def make_progress(stream: IO[str] | None = None, *, quiet: bool = False) -> SweepProgress:
    """The live display on a terminal, plain log lines otherwise, nothing when ``quiet``."""
    if quiet:
        return NullProgress()
    stream = stream or sys.stdout
    if getattr(stream, "isatty", lambda: False)():
        from rich.console import Console

        return RichProgress(Console(file=stream))
    return PlainProgress(stream)
