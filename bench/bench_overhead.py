"""Benchmark: orchestration overhead per job, beyond the job itself (goal < 1 s).

    python bench/bench_overhead.py [--jobs 8] [--repeats 3] [--executor local|inline|both]

Runs a sweep of ``--jobs`` tiny ``linear-fit`` runs (one step) and compares the slot time each
job took with the job's own duration as its record measures it (from the worker's start of
``run_attempt`` to its record: spec load, job import, the fit). The difference is what the
orchestration adds: the worker's interpreter start and imports, the claim, ``spec.json`` and
``run.json`` writes, the record's fsync'd write and the orchestrator's polling.

``local`` is the default runner (``runners/local.yaml``) as ``ablate sweep`` builds it: its slots
(one per GPU, else one per core up to 4) run jobs side by side, so the slot time per job is
``wall x slots used / jobs``. ``inline`` runs the jobs one after another in this process; its
first job pays the torch import for all and is left out. Each figure is the median of
``--repeats`` sweeps with the spread (min-max): the machine may be shared.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from ablate.execution.inline import InlineExecutor
from ablate.execution.runner_profile import load_runner_profile, make_executor
from ablate.orchestrate.orchestrator import run_sweep
from ablate.spec.sweep import load_sweep
from ablate.store import ResultsStore

SWEEP = """\
name: overhead-{name}
base:
  job: linear-fit
  train: {{steps: 1, checkpoint_every: 1}}
seeds: {seeds}
"""


def measure(executor_name: str, jobs: int, work: Path, repeat: int) -> dict[str, float]:
    """One sweep of ``jobs`` fresh runs: slot time per job, the job itself, and the slots."""
    name = f"{executor_name}-{repeat}"
    path = work / f"{name}.yaml"
    first_seed = repeat * jobs  # new run ids every repeat: nothing is skipped as done
    path.write_text(SWEEP.format(name=name, seeds=list(range(first_seed, first_seed + jobs))))
    sweep = load_sweep(path)
    store = ResultsStore(work / name / "runs")  # run ids are global: one store each
    if executor_name == "inline":
        executor, slots = InlineExecutor(store, device="cpu"), 1
    else:
        executor = make_executor(load_runner_profile(None), store)
        slots = min(jobs, executor.capacity)
    start = time.perf_counter()
    result = run_sweep(sweep, executor=executor, store=store, install_signal_handlers=False)
    wall = time.perf_counter() - start
    assert result.exit_code == 0, [r.failure_reason for r in result.records]
    durations = [r.duration_s for r in result.records]
    if executor_name == "inline":
        durations = durations[1:]  # the first inline job pays the torch import for all
        wall -= result.records[0].duration_s
        jobs -= 1
    per_job = wall * slots / jobs
    job = statistics.mean(durations)
    return {"per_job": per_job, "job": job, "overhead": per_job - job, "slots": slots, "wall": wall}


def spread(values: list[float]) -> str:
    """``median (min-max)`` in seconds."""
    return f"{statistics.median(values):6.3f} s ({min(values):.3f}-{max(values):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--executor", choices=["local", "inline", "both"], default="both")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ablate-bench-overhead-"))
    names = ["local", "inline"] if args.executor == "both" else [args.executor]
    print(
        f"{args.jobs} linear-fit jobs (1 step) per sweep, median of {args.repeats} sweeps "
        f"(min-max)  (work dir {work})"
    )
    for name in names:
        runs = [measure(name, args.jobs, work, i) for i in range(args.repeats)]
        overhead = statistics.median(r["overhead"] for r in runs)
        verdict = "OK" if overhead < 1.0 else "OVER"
        walls = spread([r["wall"] for r in runs])
        print(f"  {name:<7} slots {runs[0]['slots']:.0f}  sweep wall {walls}")
        print(
            f"          slot time/job {spread([r['per_job'] for r in runs])}   job itself "
            f"{spread([r['job'] for r in runs])}"
        )
        print(
            f"          overhead/job {spread([r['overhead'] for r in runs])}   goal < 1 s: "
            f"{verdict}"
        )


if __name__ == "__main__":
    main()
