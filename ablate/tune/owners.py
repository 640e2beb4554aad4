"""Which orchestrator owns a RUNNING trial, and whether it is still alive.

Optuna's heartbeats only work inside ``study.optimize``; with ask/tell a trial whose orchestrator
died stays RUNNING forever. Each tuner therefore holds an ``flock`` on its own owner file for its
lifetime (``runs/<sweep>/.tuners/<host>-<pid>.lock``) and writes that owner name into every trial
it asks. The kernel drops the lock when the process dies, however it dies, so "owner file not
locked" means "orphaned trial": the next tuner marks it failed and asks the point again.
"""

from __future__ import annotations

import os
from pathlib import Path

from ablate.store.files import is_locked, try_lock
from ablate.store.provenance import host_name

OWNERS_DIR = ".tuners"


class OwnerLock:
    """This process's owner file, locked while the tuner runs.

    Args:
        sweep_dir: ``runs/<sweep>/``.
    """

    def __init__(self, sweep_dir: Path) -> None:
        self.dir = Path(sweep_dir) / OWNERS_DIR
        self.name = f"{host_name()}-{os.getpid()}"
        self._fd = -1

    def __enter__(self) -> OwnerLock:
        fd = try_lock(self.dir / f"{self.name}.lock", wait=True)
        if fd is None:  # pragma: no cover - only when the file keeps being replaced
            raise OSError(f"cannot lock {self.dir / self.name}.lock")
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            (self.dir / f"{self.name}.lock").unlink(missing_ok=True)


def owner_alive(sweep_dir: Path, owner: str | None) -> bool:
    """Whether the tuner named ``owner`` still holds its owner file."""
    if not owner:
        return False
    return is_locked(Path(sweep_dir) / OWNERS_DIR / f"{owner}.lock")
