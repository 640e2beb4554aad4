"""``ablate sync``: send the tracking writes spooled during an outage to the tracking server."""

from __future__ import annotations

from pathlib import Path

from ablate.tracking.client import apply_spooled
from ablate.tracking.config import SPOOL_DIR_NAME, apply_http_defaults
from ablate.tracking.spool import ReplayResult, pending_files, replay


def spool_dir_of(runs_root: Path | str) -> Path:
    """The spool folder of a runs root."""
    return Path(runs_root) / SPOOL_DIR_NAME


def sync(runs_root: Path | str, *, tracking_uri: str | None = None) -> ReplayResult:
    """Replay every pending spool file (resumable; nothing is sent twice).

    Args:
        runs_root: the runs root whose ``.tracking-spool/`` is replayed.
        tracking_uri: send everything here instead of the URI each file was written for.

    Returns:
        What was sent; ``result.complete`` is False while some writes still could not be sent
        (the server is still down): run ``ablate sync`` again later.
    """
    apply_http_defaults()
    directory = spool_dir_of(runs_root)
    if not pending_files(directory):
        return ReplayResult()
    return replay(directory, apply_spooled, tracking_uri=tracking_uri)
