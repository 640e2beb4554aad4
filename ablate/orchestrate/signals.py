"""Ctrl-C and SIGTERM during a sweep: stop dispatching, stop the running jobs in order.

The first SIGINT or SIGTERM asks for a graceful stop: no new attempt starts, running workers get
SIGTERM and a grace period to checkpoint and record themselves cancelled. A second signal cuts
the grace period short (stragglers are killed at once and recorded cancelled by the
orchestrator); for the inline executor it also raises ``KeyboardInterrupt`` inside the job.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """Turns SIGINT/SIGTERM into a stop request while installed (a context manager).

    The handler itself never prints (a write from inside a signal handler can collide with the
    write it interrupted); it queues a notice that the sweep loop shows with :meth:`notices`.

    Args:
        install: install the handlers (only possible in the main thread; otherwise the request
            can still be made with :meth:`request`).
        interrupt_on_second: raise ``KeyboardInterrupt`` on the second signal (inline jobs).
    """

    def __init__(self, *, install: bool = True, interrupt_on_second: bool = False) -> None:
        self._install = install and threading.current_thread() is threading.main_thread()
        self._interrupt_on_second = interrupt_on_second
        self._notices: list[str] = []
        self._event = threading.Event()
        self._hurry = threading.Event()
        self._previous: dict[int, Any] = {}
        self.signal_name: str | None = None

    def __enter__(self) -> StopSignals:
        if self._install:
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if not self._event.is_set():
            self.signal_name = name
            self._event.set()
            self._say(f"{name}: stopping (running jobs get time to checkpoint; again to kill now)")
            return
        self._hurry.set()
        self._say(f"{name} again: killing running jobs now")
        if self._interrupt_on_second:
            raise KeyboardInterrupt

    def _say(self, text: str) -> None:
        self._notices.append(text)

    def notices(self) -> list[str]:
        """Notices queued by signals since the last call (shown by the sweep loop)."""
        taken, self._notices = self._notices, []
        return taken

    def request(self, reason: str = "requested") -> None:
        """Ask for a stop without a signal (tests, timeouts of the whole sweep)."""
        self.signal_name = self.signal_name or reason
        self._event.set()

    @property
    def requested(self) -> bool:
        """Whether a stop was asked for."""
        return self._event.is_set()

    @property
    def hurry(self) -> bool:
        """Whether a second signal asked to skip the grace period."""
        return self._hurry.is_set()

    def __call__(self) -> bool:
        """Forward one call (see the class docstring)."""
        return self._event.is_set()

    def wait(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds, waking early on a stop request."""
        return self._event.wait(timeout)
