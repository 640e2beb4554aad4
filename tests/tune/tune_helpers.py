"""Helpers for tune tests: a linear-fit tune file, executors, a study (imported by name)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from ablate.execution.local import LocalExecutor
from ablate.execution.slots import SlotPool
from ablate.spec.sweep import load_sweep
from ablate.store import ResultsStore
from ablate.tune.search_spec import parse_search
from ablate.tune.study import open_study, resolve_storage

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

# six trials; the third (lr 1e-4) learns slowest and is the one the median pruner must stop
PRUNING_SEARCH = """
n_trials: 6
objective: {metric: eval/mse, direction: minimize}
intermediate: train/loss
sampler: {name: random, seed: 3}
pruner: {name: median, n_startup_trials: 2, n_warmup_steps: 5}
space:
  train.lr: {type: float, low: 0.0001, high: 0.2, log: true}
enqueue:
  - {train.lr: 0.1}
  - {train.lr: 0.15}
  - {train.lr: 0.0001}
"""


def tune_file(tmp_path: Path, name: str = "tunefit", *, search: str, base: str = "") -> Path:
    """A linear-fit tune YAML with the given (indented) ``search:`` body."""
    body = (
        f"name: {name}\nbase:\n  job: linear-fit\n  train: {{steps: 60, checkpoint_every: 20}}\n"
        + base
        + "search:\n"
        + textwrap.indent(textwrap.dedent(search).strip("\n"), "  ")
        + "\n"
    )
    path = tmp_path / f"{name}.yaml"
    path.write_text(body)
    return path


def load(path: Path, runs: Path, storage: str | None = None):
    """Sweep, search, storage string and study of a tune file."""
    sweep = load_sweep(path)
    search = parse_search(sweep.search, file=path)
    storage = resolve_storage(storage or search.storage, runs)
    study = open_study(search, search.study or sweep.name, storage)
    return sweep, search, storage, study


def local_executor(store: ResultsStore, cpu_slots: int = 1) -> LocalExecutor:
    return LocalExecutor(
        SlotPool.for_devices([], cpu_slots), runs_root=store.root, threads_per_job=1
    )
