"""Per-run claims: which process is running a run right now.

A claim is ``runs/.store/claims/<run_id>.lock`` held with an exclusive ``flock``. The orchestrator
takes it before it dispatches an attempt and the worker inherits the descriptor, so the claim is
held for exactly as long as either process lives: the kernel drops it when both are gone, even
after SIGKILL, so a crashed sweep never leaves a run stuck in ``running``. The file also holds the
holder's pid, host and sweep for humans (``ablate status`` shows who runs what).

Run ids are global, so claims are too: two sweeps sharing a run never run it twice at once. The
sweep loop claims the runs it dispatches; a detached SLURM task claims its own.
:func:`lock_holder` (who holds a flocked file) serves the sweep lock too.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablate.store.files import holds_file, lock_holder, note_in_lock, try_lock
from ablate.store.layout import RunsLayout
from ablate.store.provenance import host_name


@dataclass
class RunClaim:
    """An exclusive claim on one run id, held through an open, locked file descriptor."""

    run_id: str
    path: Path
    fd: int

    def note(self, **info: Any) -> None:
        """Rewrite the human-readable holder info (pid, host, sweep, attempt, ...)."""
        payload = {"run_id": self.run_id, "pid": os.getpid(), "host": host_name(), **info}
        note_in_lock(self.fd, payload)

    def release(self) -> None:
        """Remove the claim file and drop the lock (a no-op when already released)."""
        if self.fd < 0:
            return
        with contextlib.suppress(FileNotFoundError):
            # Only unlink the file we hold: a newer claimer may have replaced it.
            if holds_file(self.fd, self.path):
                self.path.unlink()
        os.close(self.fd)
        self.fd = -1


def claim_path(layout: RunsLayout, run_id: str) -> Path:
    """The claim file of ``run_id``."""
    return layout.claims_dir / f"{run_id}.lock"


def try_claim(layout: RunsLayout, run_id: str, **info: Any) -> RunClaim | None:
    """Claim ``run_id`` if nobody holds it; ``None`` if another process does.

    Args:
        layout: the runs layout.
        run_id: the run to claim.
        **info: written into the claim file beside pid and host (sweep, attempt).
    """
    path = claim_path(layout, run_id)
    fd = try_lock(path)
    if fd is None:
        return None
    claim = RunClaim(run_id, path, fd)
    claim.note(since=time.time(), **info)
    return claim


def claim_holder(layout: RunsLayout, run_id: str) -> dict[str, Any] | None:
    """Who holds the claim on ``run_id`` (the file's info), or ``None`` if it is free."""
    return lock_holder(claim_path(layout, run_id))


def held_claims(layout: RunsLayout) -> dict[str, dict[str, Any]]:
    """Every run id claimed right now, with its holder's info (stale files are skipped)."""
    try:
        names = [e.name for e in os.scandir(layout.claims_dir) if e.name.endswith(".lock")]
    except FileNotFoundError:
        return {}
    held = {}
    for name in names:
        run_id = name[: -len(".lock")]
        info = claim_holder(layout, run_id)
        if info is not None:
            held[run_id] = info
    return held
