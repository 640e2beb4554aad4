"""Run a sweep in its own process, as ``ablate sweep`` does (tests kill and interrupt it).

python drive_sweep.py SWEEP.yaml RUNS_ROOT [--executor local|inline] [--slots N]
    [--retries N] [--grace S] [--force]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import quick_job  # noqa: E402,F401  (registers quick-fit)

from ablate.errors import AblateError  # noqa: E402
from ablate.execution.inline import InlineExecutor  # noqa: E402
from ablate.execution.local import LocalExecutor  # noqa: E402
from ablate.execution.slots import SlotPool  # noqa: E402
from ablate.orchestrate.orchestrator import run_sweep  # noqa: E402
from ablate.orchestrate.progress import PlainProgress  # noqa: E402
from ablate.spec.sweep import load_sweep  # noqa: E402
from ablate.store import ResultsStore  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("sweep", type=Path)
    parser.add_argument("runs_root", type=Path)
    parser.add_argument("--executor", default="local")
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--retries", type=int, default=1)
    parser.add_argument("--grace", type=float, default=10.0)
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    store = ResultsStore(args.runs_root)
    if args.executor == "inline":
        executor = InlineExecutor(store, device="cpu")
    else:
        pool = SlotPool.for_devices([], args.slots)
        executor = LocalExecutor(pool, runs_root=store.root, threads_per_job=1)
    try:
        result = run_sweep(
            load_sweep(args.sweep),
            executor=executor,
            store=store,
            retries=args.retries,
            force=args.force,
            progress=PlainProgress(sys.stdout, interval_s=1.0),
            grace_s=args.grace,
        )
    except AblateError as err:
        print(f"error: {err}", flush=True)
        return err.exit_code
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
