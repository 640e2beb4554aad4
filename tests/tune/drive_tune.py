"""Run a study in its own process, as ``ablate tune`` does (tests kill it and run two at once).

python drive_tune.py TUNE.yaml RUNS_ROOT [--storage S] [--trials N] [--slots N] [--grace S]
"""

from __future__ import annotations

import sys
from pathlib import Path

ORCHESTRATION = Path(__file__).resolve().parents[1] / "orchestration"
if str(ORCHESTRATION) not in sys.path:
    sys.path.insert(0, str(ORCHESTRATION))

from driver_common import driver_parser, exit_code_of, local_executor, plain_progress  # noqa: E402

from ablate.spec.sweep import load_sweep  # noqa: E402
from ablate.store import ResultsStore  # noqa: E402
from ablate.tune.search_spec import parse_search  # noqa: E402
from ablate.tune.study import open_study, resolve_storage  # noqa: E402
from ablate.tune.tuner import run_study  # noqa: E402


def main() -> int:
    parser = driver_parser("tune")
    parser.add_argument("--storage", default=None)
    parser.add_argument("--trials", type=int, default=None)
    args = parser.parse_args()
    store = ResultsStore(args.runs_root)
    sweep = load_sweep(args.tune)
    search = parse_search(sweep.search, file=args.tune)
    storage = resolve_storage(args.storage or search.storage, store.root)
    executor = local_executor(store, args.slots)

    def tune():
        study = open_study(search, search.study or sweep.name, storage)
        return run_study(
            sweep,
            search,
            study=study,
            storage=storage,
            executor=executor,
            store=store,
            n_trials=args.trials,
            progress=plain_progress(),
            grace_s=args.grace,
        )

    return exit_code_of(tune)


if __name__ == "__main__":
    sys.exit(main())
