"""Run a sweep in its own process, as ``ablate sweep`` does (tests kill and interrupt it).

python drive_sweep.py SWEEP.yaml RUNS_ROOT [--executor local|inline] [--slots N]
    [--retries N] [--grace S] [--force]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import quick_job  # noqa: E402,F401  (registers quick-fit)
from driver_common import driver_parser, exit_code_of, local_executor, plain_progress  # noqa: E402

from ablate.execution.inline import InlineExecutor  # noqa: E402
from ablate.orchestrate.orchestrator import run_sweep  # noqa: E402
from ablate.spec.sweep import load_sweep  # noqa: E402
from ablate.store import ResultsStore  # noqa: E402


def main() -> int:
    parser = driver_parser("sweep")
    parser.add_argument("--executor", default="local")
    parser.add_argument("--retries", type=int, default=1)
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    store = ResultsStore(args.runs_root)
    if args.executor == "inline":
        executor = InlineExecutor(store, device="cpu")
    else:
        executor = local_executor(store, args.slots)
    return exit_code_of(
        lambda: run_sweep(
            load_sweep(args.sweep),
            executor=executor,
            store=store,
            retries=args.retries,
            force=args.force,
            progress=plain_progress(),
            grace_s=args.grace,
        )
    )


if __name__ == "__main__":
    sys.exit(main())
