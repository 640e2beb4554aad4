"""Benchmark: orchestration overhead per job, beyond the job itself (goal < 1 s).

    python bench/bench_overhead.py [--jobs 8] [--executor local|inline|both]

Runs a sweep of ``--jobs`` tiny ``linear-fit`` runs (one step) one at a time and compares the wall
time per job with the job's own duration as its record measures it (from the worker's start of
``run_attempt`` to its record: spec load, job import, the fit). The difference is what the
orchestration adds: the worker's interpreter start and imports, the claim, ``spec.json`` and
``run.json`` writes, the record's fsync'd write and the orchestrator's polling.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from ablate.execution.inline import InlineExecutor
from ablate.execution.local import LocalExecutor
from ablate.execution.slots import SlotPool
from ablate.orchestrate.orchestrator import run_sweep
from ablate.spec.sweep import load_sweep
from ablate.store import ResultsStore

SWEEP = """\
name: overhead-{executor}
base:
  job: linear-fit
  train: {{steps: 1, checkpoint_every: 1}}
seeds: {seeds}
"""


def measure(executor_name: str, jobs: int, work: Path) -> dict[str, float]:
    path = work / f"{executor_name}.yaml"
    path.write_text(SWEEP.format(executor=executor_name, seeds=list(range(jobs))))
    sweep = load_sweep(path)
    store = ResultsStore(work / executor_name / "runs")  # run ids are global: one store each
    if executor_name == "inline":
        executor = InlineExecutor(store, device="cpu")
    else:
        executor = LocalExecutor(SlotPool.for_devices([], 1), runs_root=store.root)
    start = time.perf_counter()
    result = run_sweep(sweep, executor=executor, store=store, install_signal_handlers=False)
    wall = time.perf_counter() - start
    assert result.exit_code == 0, [r.failure_reason for r in result.records]
    durations = [r.duration_s for r in result.records]
    if executor_name == "inline":
        durations = durations[1:]  # the first inline job pays the torch import for all
        wall -= result.records[0].duration_s
        jobs -= 1
    per_job = wall / jobs
    job = statistics.mean(durations)
    return {"per_job": per_job, "job": job, "overhead": per_job - job}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--executor", choices=["local", "inline", "both"], default="both")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ablate-bench-overhead-"))
    names = ["local", "inline"] if args.executor == "both" else [args.executor]
    print(f"{args.jobs} linear-fit jobs (1 step), one at a time  (work dir {work})")
    for name in names:
        m = measure(name, args.jobs, work)
        verdict = "OK" if m["overhead"] < 1.0 else "OVER"
        print(
            f"  {name:<7} wall/job {m['per_job']:6.3f} s   job itself {m['job']:6.3f} s   "
            f"overhead {m['overhead']:6.3f} s   goal < 1 s: {verdict}"
        )


if __name__ == "__main__":
    main()
