"""Run a study in its own process, as ``ablate tune`` does (tests kill it and run two at once).

python drive_tune.py TUNE.yaml RUNS_ROOT [--storage S] [--trials N] [--slots N]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ablate.errors import AblateError
from ablate.execution.local import LocalExecutor
from ablate.execution.slots import SlotPool
from ablate.orchestrate.progress import PlainProgress
from ablate.spec.sweep import load_sweep
from ablate.store import ResultsStore
from ablate.tune.search_spec import parse_search
from ablate.tune.study import open_study, resolve_storage
from ablate.tune.tuner import run_study


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("tune", type=Path)
    parser.add_argument("runs_root", type=Path)
    parser.add_argument("--storage", default=None)
    parser.add_argument("--trials", type=int, default=None)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--grace", type=float, default=10.0)
    args = parser.parse_args()
    store = ResultsStore(args.runs_root)
    sweep = load_sweep(args.tune)
    search = parse_search(sweep.search, file=args.tune)
    storage = resolve_storage(args.storage or search.storage, store.root)
    executor = LocalExecutor(
        SlotPool.for_devices([], args.slots), runs_root=store.root, threads_per_job=1
    )
    try:
        study = open_study(search, search.study or sweep.name, storage)
        result = run_study(
            sweep, search, study=study, storage=storage, executor=executor, store=store,
            n_trials=args.trials, progress=PlainProgress(sys.stdout, interval_s=1.0),
            grace_s=args.grace,
        )
    except AblateError as err:
        print(f"error: {err}", flush=True)
        return err.exit_code
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
