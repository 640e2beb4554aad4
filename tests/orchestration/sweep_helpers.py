"""Helpers for orchestration tests: sweep files, executors (imported by name, not via conftest).

Fixtures live here too, imported by each test module: several test folders have a
``conftest.py`` and tests elsewhere import helpers ``from conftest``, which picks whichever
conftest was loaded last; this folder adds none to that race.
"""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest
import quick_job  # noqa: F401  (registers quick-fit in this process)

from ablate.execution.inline import InlineExecutor
from ablate.execution.local import LocalExecutor
from ablate.execution.slots import SlotPool
from ablate.spec.sweep import load_sweep
from ablate.store import ResultsStore

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DRIVER = HERE / "drive_sweep.py"


def let_workers_import_quick_job(monkeypatch) -> None:
    """Workers (and SLURM tasks, which inherit this environment) start with a fresh registry:
    let them import quick-fit, and skip git calls."""
    path = os.pathsep.join([str(HERE), str(REPO), os.environ.get("PYTHONPATH", "")])
    monkeypatch.setenv("PYTHONPATH", path)
    monkeypatch.setenv("ABLATE_JOB_MODULES", "quick_job")
    monkeypatch.setenv("ABLATE_GIT_SHA", "0" * 40)  # skip git calls in workers
    monkeypatch.setenv("ABLATE_GIT_DIRTY", "0")


@pytest.fixture(autouse=True)
def worker_can_import_quick_job(monkeypatch):
    """Workers start with a fresh registry: let them import quick-fit."""
    let_workers_import_quick_job(monkeypatch)


@pytest.fixture(name="runs")
def runs_fixture(tmp_path) -> Path:
    """A runs root under tmp_path."""
    return tmp_path / "runs"


@pytest.fixture(name="store")
def store_fixture(runs) -> ResultsStore:
    """A results store in that runs root."""
    return ResultsStore(runs)


def sweep_file(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\n" + textwrap.dedent(body).lstrip("\n"))
    return path


def quick_sweep(tmp_path: Path, name: str = "quick", *, seeds=(0, 1), **fit):
    """A quick-fit sweep over seeds with the given ``fit`` knobs."""
    lines = "".join(
        f"    {k}: {str(v).lower() if isinstance(v, bool) else v}\n" for k, v in fit.items()
    )
    body = "base:\n  job: quick-fit\n" + (f"  fit:\n{lines}" if lines else "")
    body += f"seeds: [{', '.join(map(str, seeds))}]\n"
    return load_sweep(sweep_file(tmp_path, name, body))


def local_executor(store: ResultsStore, *, cpu_slots: int = 2, gpus=()) -> LocalExecutor:
    return LocalExecutor(
        SlotPool.for_devices(list(gpus), cpu_slots), runs_root=store.root, threads_per_job=1
    )


def inline_executor(store: ResultsStore) -> InlineExecutor:
    return InlineExecutor(store, device="cpu")


def python() -> str:
    return sys.executable
