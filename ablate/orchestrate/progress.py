"""Progress of a running sweep: a live rich display on a terminal, plain log lines elsewhere.

The orchestrator reports events (attempt started / finished, messages) and, every loop tick, a
:class:`SweepStatus` snapshot: done / running / failed / left, an ETA from the mean duration of the
attempts finished so far, and each running run's position read from its ``progress.json`` (the
phase, ``train`` / ``validate`` / ``test``, its step and total, the epoch and the last loss). The
live display shows per running run its label (as text, never markup: ``[dim 8, groups 2]`` stays
literal), phase, epoch, step, loss, steps per second and the phase's ETA; a finished run its
headline accuracy; the end, a table of the runs' results and the command that reports them. The
plain display prints one line per event plus a summary line at most every ``interval_s`` seconds,
so a log file stays readable.

Library messages (MLflow's INFO lines, Python warnings from bitsandbytes or transformers) would
tear through a live display: while it runs, the process's stderr goes to the sweep's log file
instead (each run's own output is in its ``worker.log``).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ablate.orchestrate.run_columns import (
    axis_keys_of,
    flat_axes,
    format_seconds,
    headline_text,
    varying_keys,
)

#: The sweep folder's log of library messages while the live display runs (``runs/<sweep>/``).
SWEEP_LOG = "sweep.log"

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


def _axes_text(
    axes: dict[str, Any],
    label: str | None = None,
    width: int = 60,
    keys: list[str] | None = None,
) -> str:
    """``label (adapter.dim=8 seed=0)``: the label and the axis fields (``keys``: these only)."""
    flat = flat_axes(axes)
    text = " ".join(f"{k}={flat[k]}" for k in (keys if keys is not None else flat) if k in flat)
    if label:
        text = f"{label} ({text})" if text else label
    return text if len(text) <= width else text[: width - 1] + "…"


def _plan_axis_keys(plan: Plan) -> list[str]:
    """The axis fields that differ between the plan's runs (what identifies a run on screen)."""
    flats = [flat_axes(entry.run.axes) for entry in plan.entries]
    return varying_keys(flats, axis_keys_of(flats))


def _finished_text(record: AttemptRecord) -> str:
    """``: test/Avg 88.35`` for a success with a result, else blank."""
    if record.status.value != "success":
        return ""
    found = headline_text(record.metrics)
    return f": {found}" if found else ""


class StepRate:
    """Steps per second of each running run's current phase, from its progress reports.

    The first report of a ``(run, attempt, phase)`` is the origin; the rate is the steps since
    over the worker's clock since, so a phase change (train to validate) starts a new rate.
    """

    def __init__(self) -> None:
        self._origin: dict[tuple[str, int, str], tuple[float, float]] = {}

    def rate(self, view: RunningView, step: dict[str, Any]) -> float | None:
        """Steps per second, or None until two reports of the phase were seen."""
        key = (view.run_id, view.attempt, str(step.get("phase", "train")))
        now, done = float(step.get("time", 0.0)), float(step.get("step", 0))
        first_time, first_step = self._origin.setdefault(key, (now, done))
        if now <= first_time or done <= first_step:
            return None
        return (done - first_step) / (now - first_time)


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

    def close(self) -> None:
        """Release the display (idempotent; called after :meth:`finish`, or on an error)."""


class NullProgress(SweepProgress):
    """Shows nothing (library use, tests)."""


class PlainProgress(SweepProgress):
    """Timestamped log lines: one per event, a status line at most every ``interval_s``.

    Args:
        stream: where to write (default stdout).
        interval_s: minimum seconds between periodic status lines.
    """

    def __init__(
        self, stream: IO[str] | None = None, interval_s: float = 30.0, *, announce: bool = True
    ) -> None:
        self.stream = stream or sys.stdout
        self.interval_s = interval_s
        self.announce = announce
        self._last = 0.0
        self._sweep = ""
        self._keys: list[str] | None = None

    def _line(self, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        self.stream.write(f"{stamp} [{self._sweep}] {text}\n")
        self.stream.flush()

    def start(self, plan: Plan) -> None:
        """Show the plan summary (unless the caller showed the plan: ``announce=False``)."""
        self._sweep = plan.sweep.name
        self._keys = _plan_axis_keys(plan)
        if self.announce:
            counts = ", ".join(f"{k} {v}" for k, v in plan.counts.items() if v)
            n = len(plan.to_dispatch())
            self._line(f"{len(plan.entries)} runs ({counts}); {n} to dispatch")
        self._last = time.monotonic()

    def attempt_started(self, entry: PlanEntry, attempt: int, slot: str) -> None:
        """Show a dispatched attempt."""
        axes = _axes_text(entry.run.axes, getattr(entry.run, "label", None), keys=self._keys)
        self._line(f"start  {entry.run_id} attempt {attempt} on {slot}  {axes}")

    def attempt_finished(self, entry: PlanEntry, record: AttemptRecord, retry: bool) -> None:
        """Show an ended attempt."""
        took = format_seconds(record.duration_s or 0.0)
        text = f"{record.status.value:<7} {entry.run_id} attempt {record.attempt} in {took}"
        text += _finished_text(record)
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
        """Show the final summary, the runs' results and what to run next."""
        from ablate.orchestrate.compare import invocation_results, next_commands, plain_lines

        self._line(result.summary())
        table = invocation_results(result)
        if table is not None:
            self.stream.write("\n".join(plain_lines(table)) + "\n")
        for command in next_commands(result):
            self._line(f"next: {command}")


class RichProgress(SweepProgress):
    """A live table redrawn in place (terminals only).

    Args:
        console: a ``rich.console.Console`` (default: stdout).
        refresh_per_second: redraw rate.
        announce: print the plan's counts at start (False: the caller printed the plan).
        log_file: where the process's stderr goes while the display is live (library log
            lines, warnings); None: stderr is left alone.
    """

    def __init__(
        self,
        console: Any = None,
        refresh_per_second: float = 4.0,
        *,
        announce: bool = True,
        log_file: Path | None = None,
    ) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = console or Console()
        self.announce = announce
        self.log_file = log_file
        self._live = Live(
            console=self.console,
            refresh_per_second=refresh_per_second,
            transient=False,
            redirect_stderr=False,
        )
        self._status: SweepStatus | None = None
        self._keys: list[str] | None = None
        self._rates = StepRate()
        self._saved_stderr: Any = None
        self._log: IO[str] | None = None

    def start(self, plan: Plan) -> None:
        """Show the plan summary (unless ``announce`` is off); go live."""
        from rich.markup import escape

        self._keys = _plan_axis_keys(plan)
        if self.announce:
            counts = ", ".join(f"{k} {v}" for k, v in plan.counts.items() if v)
            self.console.print(
                f"[bold]{escape(plan.sweep.name)}[/]: {len(plan.entries)} runs ({counts}); "
                f"{len(plan.to_dispatch())} to dispatch",
                highlight=False,
            )
        self._divert_stderr()
        self._live.start()

    def _divert_stderr(self) -> None:
        """Send the process's stderr to :attr:`log_file` until :meth:`close`."""
        if self.log_file is None or self._log is not None:
            return
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_file, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
        self._saved_stderr, sys.stderr = sys.stderr, self._log

    def _event(self, text: str) -> None:
        self._live.console.print(text, highlight=False)

    def attempt_started(self, entry: PlanEntry, attempt: int, slot: str) -> None:
        """Show a dispatched attempt."""
        from rich.markup import escape

        who = _axes_text(entry.run.axes, getattr(entry.run, "label", None), keys=self._keys)
        self._event(f"[cyan]start[/]     {entry.run_id} attempt {attempt} on {slot}  {escape(who)}")

    def attempt_finished(self, entry: PlanEntry, record: AttemptRecord, retry: bool) -> None:
        """Show an ended attempt (a success with its headline accuracy)."""
        from rich.markup import escape

        colour = {"success": "green", "failed": "red", "cancelled": "yellow"}[record.status.value]
        took = format_seconds(record.duration_s or 0.0)
        text = f"[{colour}]{record.status.value:<9}[/] {entry.run_id} attempt {record.attempt}"
        text += f" in {took}"
        found = _finished_text(record)
        if found:
            text += f"[bold]{escape(found)}[/]"
        if record.failure_reason:
            reason = record.failure_reason.splitlines()[0][:120]
            text += f": {escape(reason)}"
        if retry:
            text += " (will retry)"
        self._event(text)

    def message(self, text: str) -> None:
        """Show a notice."""
        from rich.markup import escape

        self._event(f"[bold yellow]{escape(text)}[/]")

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
        for column in ("run", "id", "slot", "phase", "epoch", "step", "loss", "it/s", "ETA"):
            table.add_column(
                column, no_wrap=column != "run", max_width=40 if column == "run" else None
            )
        table.add_column("time")
        now = time.time()
        for view in status.running:
            cells = self._run_cells(view)
            who = view.label or _axes_text(view.axes, width=40, keys=self._keys) or view.run_id
            attempt = f" (attempt {view.attempt})" if view.attempt > 1 else ""
            table.add_row(
                Text(who),  # text, not markup: a label such as [dim 8, groups 2] stays literal
                Text(view.run_id + attempt),
                Text(view.slot),
                *(Text(cell) for cell in cells),
                Text(format_seconds(now - view.started_at)),
            )
        return Group(head, table)

    def _run_cells(self, view: RunningView) -> list[str]:
        """phase, epoch, step, loss, it/s and the phase's ETA of one running run."""
        step = view.step()
        if not step or "total" not in step:
            return ["starting", "", "", "", "", ""]
        epoch = f"{step['epoch']:g}" if isinstance(step.get("epoch"), (int, float)) else ""
        if epoch and isinstance(step.get("epochs"), (int, float)):
            epoch += f"/{step['epochs']:g}"
        loss = f"{step['loss']:.4f}" if isinstance(step.get("loss"), (int, float)) else ""
        rate = self._rates.rate(view, step)
        eta = ""
        if rate:
            eta = format_seconds(max(0.0, step["total"] - step["step"]) / rate)
        return [
            str(step.get("phase", "train")),
            epoch,
            f"{step['step']}/{step['total']}",
            loss,
            f"{rate:.2f}" if rate else "",
            eta,
        ]

    def finish(self, result: SweepResult) -> None:
        """Show the final summary, the runs' results and what to run next."""
        from ablate.orchestrate.compare import invocation_results, next_commands, rich_table

        if self._status is not None:
            self._live.update(self._render(self._status))
        self.close()
        style = "yellow" if result.interrupted else "green"
        self.console.print(result.summary(), style=style, highlight=False, markup=False)
        table = invocation_results(result)
        if table is not None:
            self.console.print(rich_table(table))
        for command in next_commands(result):
            self.console.print(f"next: {command}", highlight=False, markup=False)
        if self.log_file is not None and self.log_file.is_file() and self.log_file.stat().st_size:
            self.console.print(
                f"library messages (MLflow, warnings): {self.log_file}",
                style="dim",
                highlight=False,
                markup=False,
            )

    def close(self) -> None:
        """Stop the live display and give stderr back (idempotent)."""
        self._live.stop()
        if self._log is not None:
            sys.stderr = self._saved_stderr
            self._log.close()
            self._log = None


def make_progress(
    stream: IO[str] | None = None,
    *,
    quiet: bool = False,
    announce: bool = True,
    log_file: Path | None = None,
) -> SweepProgress:
    """The live display on a terminal, plain log lines otherwise, nothing when ``quiet``.

    Args:
        stream: where the display writes (default stdout).
        quiet: show nothing.
        announce: print the plan's counts at start (False when the caller printed the plan).
        log_file: the live display's destination for the process's stderr (library messages).
    """
    if quiet:
        return NullProgress()
    stream = stream or sys.stdout
    if getattr(stream, "isatty", lambda: False)():
        from rich.console import Console

        return RichProgress(Console(file=stream), announce=announce, log_file=log_file)
    return PlainProgress(stream, announce=announce)
