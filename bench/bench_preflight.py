"""Benchmark: the preflight of ``ablate sweep`` over a sweep's runs to dispatch (goal: under 1 s).

    python bench/bench_preflight.py [--sweep sweeps/table3.yaml] [--runner local] [--repeats 7]

Loads and plans the sweep once (against an empty results store), then times the preflight alone
(:func:`ablate.orchestrate.preflight.find_problems` with a fresh :class:`Machine` each repeat, so
GPU discovery and, for uncached hub ids, the bounded hub probe are paid every time) and prints the
median, with the problems it found. ``HF_HUB_OFFLINE=1`` skips the probe.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from ablate.execution.runner_profile import load_runner_profile
from ablate.orchestrate.plan import make_plan
from ablate.orchestrate.preflight import Machine, find_problems
from ablate.spec.sweep import load_sweep
from ablate.store.results_store import ResultsStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", default="sweeps/table3.yaml")
    parser.add_argument("--runner", default="local")
    parser.add_argument("--scale", default=None)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    sweep = load_sweep(args.sweep, scale=args.scale)
    profile = load_runner_profile(args.runner)
    with tempfile.TemporaryDirectory() as runs:
        entries = make_plan(sweep, ResultsStore(runs)).to_dispatch()
    times, problems = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        problems = find_problems(entries, Machine(profile))
        times.append(time.perf_counter() - start)
    print(
        f"preflight of {args.sweep} ({len(entries)} runs, runner {args.runner}): median "
        f"{statistics.median(times) * 1000:.1f} ms over {args.repeats} repeats "
        f"(min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f}); "
        f"{len(problems)} problem(s)"
    )
    for problem in problems:
        print("  " + problem.line(len(entries))[:160])


if __name__ == "__main__":
    main()
