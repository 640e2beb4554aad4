"""The sweep lock: one orchestrator per sweep at a time.

``runs/<sweep>/.lock`` is held with ``flock`` for the orchestrator's lifetime. The kernel releases
it when the holder dies, however it dies, so a crash never needs a manual unlock. The holder
writes its pid, host, start time and command line into the file, and a second ``ablate sweep`` on
the same sweep refuses with a message that names the running one.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from typing import Any

from ablate.errors import AblateError
from ablate.execution.claims import lock_holder, read_lock_info
from ablate.store.layout import RunsLayout
from ablate.store.provenance import host_name


class SweepLockedError(AblateError):
    """Another orchestrator is running the same sweep."""

    exit_code = 3


class SweepLock:
    """Exclusive lock on one sweep, as a context manager.

    Args:
        layout: the runs layout.
        sweep: the sweep's name.
        command: the command line recorded for whoever is refused (default: ``sys.argv``).
    """

    def __init__(self, layout: RunsLayout, sweep: str, command: str | None = None) -> None:
        self.path = layout.sweep_lock_path(sweep)
        self.sweep = sweep
        self.command = command if command is not None else " ".join(sys.argv)
        self._fd = -1

    def acquire(self) -> SweepLock:
        """Take the lock or raise :class:`SweepLockedError` naming the holder."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SweepLockedError(self._refusal(read_lock_info(self.path))) from None
        info = {
            "pid": os.getpid(),
            "host": host_name(),
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": self.command,
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info, sort_keys=True).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Drop the lock (the file stays; its content is stale once unlocked)."""
        if self._fd >= 0:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = -1

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd >= 0

    def __enter__(self) -> SweepLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _refusal(self, info: dict[str, Any]) -> str:
        holder = (
            f"pid {info.get('pid', '?')} on {info.get('host', '?')} since {info.get('since', '?')}"
        )
        command = info.get("command")
        text = f"sweep {self.sweep!r} is already running ({holder}"
        text += f", command: {command})" if command else ")"
        return text + f"; wait for it to finish or stop it (lock file {self.path})"


def sweep_lock_holder(layout: RunsLayout, sweep: str) -> dict[str, Any] | None:
    """Who holds the lock of ``sweep`` right now (``None`` if nobody): for ``ablate status``."""
    return lock_holder(layout.sweep_lock_path(sweep))
