"""``ablate sync``: after an outage or a crash, bring the tracking server up to date.

Two things may be missing on the server: writes the tracker spooled while it was down (runs
created, tags, end states; :mod:`ablate.tracking.spool`), and whatever of a run folder no sync
sent yet (step metrics, ended attempts; :mod:`ablate.tracking.run_sync`). The spool is replayed
first, so that runs created offline exist before their folders' metrics are sent to them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

from ablate.store.results_store import ResultsStore
from ablate.store.run_folder import TRACKING_LINK_FILE, read_tracking_link
from ablate.tracking.client import TrackingClient, apply_spooled
from ablate.tracking.config import (
    SPOOL_DIR_NAME,
    TRACKING_URI_ENV,
    apply_http_defaults,
    usable_uri,
)
from ablate.tracking.run_sync import sync_run_folder
from ablate.tracking.spool import ReplayResult, pending_files, replay


@dataclass
class SyncSummary(ReplayResult):
    """What :func:`sync` did: the spool's replay, plus the run folders brought up to date.

    Attributes:
        folder_metrics: step metric values sent from run folders.
        attempts_reported: ended attempts reported from run folders.
        pending_run_folders: run folders with step metrics the server still did not take.
    """

    folder_metrics: int = 0
    attempts_reported: int = 0
    pending_run_folders: list[Path] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Whether everything reached the server."""
        return not self.remaining_files and not self.pending_run_folders

    @property
    def nothing_to_do(self) -> bool:
        """Whether there was nothing to send at all."""
        return self.files == 0 and not self.folder_metrics and not self.attempts_reported


def spool_dir_of(runs_root: Path | str) -> Path:
    """The spool folder of a runs root."""
    return Path(runs_root) / SPOOL_DIR_NAME


def tracked_run_folders(runs_root: Path | str) -> list[Path]:
    """Every run folder under ``runs_root`` linked to an MLflow run, in name order."""
    return sorted(p.parent for p in Path(runs_root).glob(f"*/*/{TRACKING_LINK_FILE}"))


def sync(runs_root: Path | str, *, tracking_uri: str | None = None) -> SyncSummary:
    """Replay the spool, then sync every tracked run folder (resumable; nothing is sent twice).

    Args:
        runs_root: the runs root whose ``.tracking-spool/`` and run folders are synced.
        tracking_uri: send everything here instead of the URI each write was meant for.

    Returns:
        What was sent; ``complete`` is False while some writes still could not be sent (the
        server is still down): run ``ablate sync`` again later.
    """
    apply_http_defaults()
    directory = spool_dir_of(runs_root)
    summary = SyncSummary()
    if pending_files(directory):
        replayed = replay(
            directory, functools.partial(apply_spooled, clients={}), tracking_uri=tracking_uri
        )
        summary = SyncSummary(**vars(replayed))
    store = ResultsStore(runs_root)
    clients: dict[str, TrackingClient] = {}
    for run_dir in tracked_run_folders(runs_root):
        stored = str((read_tracking_link(run_dir) or {}).get("tracking_uri") or "")
        uri = tracking_uri or (usable_uri(stored) if stored else None)
        if not uri:
            if stored:  # written with its password masked: the full URI must be passed
                summary.errors.append(
                    f"{run_dir}: its tracking URI {stored} has its password masked; pass "
                    f"--tracking-uri or set {TRACKING_URI_ENV} to the full URI"
                )
                summary.pending_run_folders.append(run_dir)
            continue
        if uri not in clients:
            clients[uri] = TrackingClient(uri, directory)
        done = sync_run_folder(run_dir, clients[uri], records=store.attempts_of(run_dir.name))
        summary.folder_metrics += done.metrics
        summary.attempts_reported += len(done.reported)
        if done.pending:
            summary.pending_run_folders.append(run_dir)
    return summary
