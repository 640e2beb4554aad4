"""Benchmark: what the tuner itself costs per trial, per storage (target: well under 1 s/trial).

    PYTHONPATH=. .venv/bin/python bench/bench_tune.py [--trials 40] [--steps 5]

Runs a study of ``--trials`` ``linear-fit`` trials of ``--steps`` steps with the inline executor
(no worker start-up), once per storage (SQLite, journal file), in a fresh runs root each time. It
prints the wall time per trial and the part of it spent in the job itself (its record's duration),
so the difference is the tuner's own cost: ask/tell, spec build and run id, claims, run files,
store records. Pruning is not exercised: with the inline executor a job has ended before the
tuner could read its metrics (the pruning path is tested with the local executor in tests/tune).
A short warm-up study runs first so that no storage pays the first imports.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import textwrap
import time
from pathlib import Path

from ablate.execution.inline import InlineExecutor
from ablate.spec.sweep import load_sweep
from ablate.store.results_store import ResultsStore
from ablate.tune.search_spec import parse_search
from ablate.tune.study import open_study
from ablate.tune.tuner import run_study

SEARCH = """
search:
  n_trials: {trials}
  objective: {{metric: eval/mse, direction: minimize}}
  sampler: {{name: tpe, seed: 0, n_startup_trials: 10}}
  space:
    train.lr: {{type: float, low: 1.0e-3, high: 0.3, log: true}}
    train.batch_size: {{type: int, low: 8, high: 64, step: 8}}
    data.noise: {{type: categorical, choices: [0.05, 0.1, 0.2]}}
"""


def one_study(root: Path, storage: str, trials: int, steps: int) -> None:
    path = root / "bench_tune.yaml"
    path.write_text(
        f"name: bench_tune\nbase:\n  job: linear-fit\n  train: {{steps: {steps}}}\n"
        + textwrap.dedent(SEARCH.format(trials=trials))
    )
    sweep = load_sweep(path)
    search = parse_search(sweep.search, file=path)
    store = ResultsStore(root / "runs")
    study = open_study(search, "bench", storage)
    start = time.perf_counter()
    result = run_study(
        sweep,
        search,
        study=study,
        storage=storage,
        executor=InlineExecutor(store, device="cpu"),
        store=store,
        install_signal_handlers=False,
    )
    wall = time.perf_counter() - start
    job = sum(r.duration_s or 0.0 for r in result.records)
    n = len(study.get_trials())
    print(
        f"{storage.split(':')[0]:<8} {n} trials: "
        f"{wall / n * 1000:7.1f} ms/trial wall, {job / n * 1000:6.1f} ms in the job, "
        f"tuner {max(wall - job, 0.0) / n * 1000:6.1f} ms/trial"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("ABLATE_GIT_SHA", "0" * 40)  # git calls are not the tuner's cost
    os.environ.setdefault("ABLATE_GIT_DIRTY", "0")
    import torch  # noqa: F401  (imported before timing: the first trial should not pay it)

    with tempfile.TemporaryDirectory() as tmp:
        print("warm-up:", end=" ")
        one_study(Path(tmp), f"sqlite:///{Path(tmp) / 'optuna.db'}", 3, args.steps)
    for kind in ("sqlite", "journal"):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            storage = (
                f"sqlite:///{root / 'optuna.db'}"
                if kind == "sqlite"
                else f"journal:{root / 'study.journal'}"
            )
            one_study(root, storage, args.trials, args.steps)


if __name__ == "__main__":
    main()
