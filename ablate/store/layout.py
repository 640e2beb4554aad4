"""Where everything lives under a runs root (default ``./runs``).

One object knows the folder layout so that the orchestrator, the worker, the store and the CLI
never build paths by hand::

    runs/
      .store/records/<run_id>-<attempt:04d>-<status>-<uid8>.json   one file per attempt
      .store/index.parquet                                          incremental index (DataFrame)
      .store/summary.tsv                                            incremental index (planning)
      .store/claims/<run_id>.lock                                   who is running a run right now
      <sweep>/.lock                                                 the sweep lock
      <sweep>/sweep.log                                             library messages of a live sweep
      <sweep>/<run_id>/spec.json, run.json, worker.log, progress.json, checkpoints ...

Run ids are global: the store and the claims are shared by all sweeps, so a run that succeeded
in one sweep is done in every sweep that contains it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

RUNS_DIR_ENV = "ABLATE_RUNS_DIR"
DEFAULT_RUNS_DIR = "runs"


def default_runs_root() -> Path:
    """The runs root: ``$ABLATE_RUNS_DIR`` if set, else ``./runs``."""
    return Path(os.environ.get(RUNS_DIR_ENV) or DEFAULT_RUNS_DIR)


def safe_component(name: str, what: str) -> str:
    """``name`` if it cannot lead out of the folder it is joined to (one plain component).

    Raises:
        ValueError: ``..``, a path separator or a NUL byte (path traversal).
    """
    text = str(name)
    if text == ".." or any(c in text for c in ("/", "\\", "\0")):
        raise ValueError(f"{what} {text!r} is not a plain folder name (path traversal refused)")
    return text


@dataclass(frozen=True)
class RunsLayout:
    """Paths under one runs root.

    Attributes:
        root: the runs root folder (created lazily by whoever writes first).
    """

    root: Path

    @property
    def store_dir(self) -> Path:
        """The results store folder (records, index, claims)."""
        return self.root / ".store"

    @property
    def records_dir(self) -> Path:
        """One JSON file per attempt, flat so a single directory listing sees them all."""
        return self.store_dir / "records"

    @property
    def index_path(self) -> Path:
        """Parquet index of the records already read (refreshed incrementally)."""
        return self.store_dir / "index.parquet"

    @property
    def summary_path(self) -> Path:
        """Plain-text index of run id, attempt, status and sweep per record.

        Planning reads only this, so ``ablate sweep`` and ``ablate status`` never import pyarrow.
        """
        return self.store_dir / "summary.tsv"

    @property
    def claims_dir(self) -> Path:
        """Per-run claim files, locked with ``flock`` while an attempt runs."""
        return self.store_dir / "claims"

    def sweep_dir(self, sweep: str) -> Path:
        """The folder of one sweep's runs.

        Raises:
            ValueError: ``sweep`` could lead out of the runs root (``..``, ``a/b``).
        """
        return self.root / safe_component(sweep, "sweep name")

    def sweep_lock_path(self, sweep: str) -> Path:
        """The lock file held by the orchestrator of ``sweep``."""
        return self.sweep_dir(sweep) / ".lock"

    def run_dir(self, sweep: str, run_id: str) -> Path:
        """The run's own folder: its ``spec.json``, logs, progress and checkpoints."""
        return self.sweep_dir(sweep) / safe_component(run_id, "run id")

    @classmethod
    def for_run_dir(cls, run_dir: Path) -> RunsLayout:
        """The layout a run folder ``<root>/<sweep>/<run_id>`` belongs to."""
        return cls(Path(run_dir).resolve().parent.parent)
