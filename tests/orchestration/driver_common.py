"""What the driver scripts share: ``drive_sweep.py`` here and ``tests/tune/drive_tune.py``.

Both run the sweep loop in a process of their own (tests kill and interrupt it) on a local
executor of ``--slots`` CPU slots, print plain progress lines every second, and exit with the
result's exit code, or an ``AblateError``'s after printing it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ablate.errors import AblateError
from ablate.execution.local import LocalExecutor
from ablate.execution.slots import SlotPool
from ablate.orchestrate.progress import PlainProgress
from ablate.store import ResultsStore


def driver_parser(target: str) -> argparse.ArgumentParser:
    """``TARGET RUNS_ROOT [--slots N] [--grace S]``; each driver adds its own options."""
    parser = argparse.ArgumentParser()
    parser.add_argument(target, type=Path)
    parser.add_argument("runs_root", type=Path)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--grace", type=float, default=10.0)
    return parser


def local_executor(store: ResultsStore, slots: int) -> LocalExecutor:
    """``slots`` CPU job slots, one thread per job."""
    return LocalExecutor(SlotPool.for_devices([], slots), runs_root=store.root, threads_per_job=1)


def plain_progress() -> PlainProgress:
    """Timestamped lines on stdout, a status line every second."""
    return PlainProgress(sys.stdout, interval_s=1.0)


def exit_code_of(run: Callable[[], Any]) -> int:
    """The exit code of ``run()``'s result, or of the ``AblateError`` it raised (printed)."""
    try:
        return run().exit_code
    except AblateError as err:
        print(f"error: {err}", flush=True)
        return err.exit_code
