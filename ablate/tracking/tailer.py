"""Live step metrics without MLflow in the worker: the orchestrator tails ``metrics.jsonl``.

Every worker already appends its per-step metrics to ``<run dir>/metrics.jsonl`` (the results
store's own log). The tracker's tailer thread, in the orchestrator process, reads what each
running attempt appended since its last look and sends it to the attempt's MLflow run with one
``log_batch``. Training processes never import MLflow or open a connection, so tracking costs them
nothing; the orchestrator already holds the client. This is the default
(``stream="orchestrator"``); ``stream="worker"`` hands the run id to the worker instead
(:mod:`ablate.tracking.worker_sink`), for executors whose run folders the orchestrator cannot read.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ablate.execution.attempt import read_new_metric_lines

TAIL_EVERY_S = 10.0
MetricRows = list[tuple[str, float, int, int]]


@dataclass
class TailState:
    """Where tailing one attempt's ``metrics.jsonl`` stands."""

    child: str
    path: Path
    offset: int
    seen: set[str] = field(default_factory=set)
    last_step: int = 0


class MetricsTailer:
    """Forwards new ``metrics.jsonl`` lines of running attempts every ``every_s`` seconds.

    Args:
        send: ``send(child_run_id, rows)`` logs metric rows (called with ``lock`` held).
        lock: serialises the tailer's sends with the tracker's own client calls.
        every_s: seconds between looks.
    """

    def __init__(
        self,
        send: Callable[[str, MetricRows], None],
        lock: threading.RLock,
        every_s: float = TAIL_EVERY_S,
    ) -> None:
        self.send = send
        self.lock = lock
        self.every_s = every_s
        self.states: dict[str, TailState] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, run_id: str, child: str, path: Path, offset: int) -> None:
        """Start tailing an attempt's metrics file from byte ``offset``."""
        with self.lock:
            self.states[run_id] = TailState(child, path, offset)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="ablate-tail", daemon=True)
            self._thread.start()

    def finish(self, run_id: str) -> TailState | None:
        """Stop tailing ``run_id`` after sending what it appended so far; its final state."""
        with self.lock:
            state, rows = self.take(run_id)
            if state is not None and rows:
                self.send(state.child, rows)
            return state

    def take(self, run_id: str) -> tuple[TailState | None, MetricRows]:
        """Stop tailing ``run_id``; its final state and the rows not sent yet.

        The caller sends those rows with its own end-of-attempt batch: one ``log_batch``
        instead of two.
        """
        with self.lock:
            state = self.states.pop(run_id, None)
            return state, (self._read(state) if state is not None else [])

    def poll(self) -> None:
        """One look at every tailed file (the thread's loop body; callable from tests)."""
        with self.lock:
            for state in list(self.states.values()):
                self._forward(state)

    def _forward(self, state: TailState) -> None:
        rows = self._read(state)
        if rows:
            self.send(state.child, rows)

    @staticmethod
    def _read(state: TailState) -> MetricRows:
        """The rows appended since the last look (``state`` moves past them)."""
        lines, offset = read_new_metric_lines(state.path, state.offset)
        state.offset = offset
        rows: MetricRows = []
        for step, stamp_ms, values in lines:
            state.last_step = max(state.last_step, step)
            state.seen.update(values)
            rows += [(k, v, stamp_ms, step) for k, v in values.items()]
        return rows

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.poll()

    def close(self) -> None:
        """Stop the thread (attempts still tailed are finished by the tracker)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.every_s + 5)
