"""Benchmark: ``ablate sweep FILE --dry-run`` over 10,000 points, whole process (goal < 1 s).

    python bench/bench_plan.py [--points 10000] [--repeats 7] [--keep DIR]

Builds a ``linear-fit`` sweep of 10 x 10 x 10 grid points x 10 seeds, writes one record per run
(70% success, 20% failed, 10% cancelled) straight into a fresh store, then times:

- the whole CLI process, as a user or a script pays it, its output to a pipe (not a terminal):
  ``--dry-run`` (the goal: the plan's summary), ``-q`` (counts only), ``--format csv`` and
  ``--show all`` (every row), and ``ablate --help`` (interpreter start-up and imports alone);
- in-process phases: expansion (``load_sweep``: YAML -> 10,000 validated RunSpecs with run ids),
  planning with a warm index (what every ``ablate sweep`` / ``ablate status`` pays), the plan's
  rows (``plan_table``); and once each, since they happen once per store: planning with a cold
  index, after one new record, and the first DataFrame (which builds the parquet index).

Every repeated figure is the median of ``--repeats`` runs with the spread (min-max), in wall time
and, for processes, their CPU time (user + system): on a shared machine the CPU time moves less.
Planning reads the plain-text summary index and never imports pyarrow or pandas.

The processes run as an installed package does, with its bytecode cached: compiled once by an
untimed run into the work dir (``PYTHONPYCACHEPREFIX``), even where ``PYTHONDONTWRITEBYTECODE``
is set (compiling ablate from source costs each process about 0.1 s more).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ablate.orchestrate.plan import make_plan
from ablate.orchestrate.plan_view import plan_table
from ablate.spec.sweep import load_sweep
from ablate.store import AttemptRecord, ResultsStore

SWEEP = """\
name: bench
base:
  job: linear-fit
  train: {{steps: 100}}
grid:
  train.lr: {lrs}
  train.batch_size: {batches}
  data.noise: {noises}
seeds: {seeds}
"""


def write_sweep(directory: Path, points: int) -> Path:
    side = max(1, round(points**0.25))
    text = SWEEP.format(
        lrs=[round(0.001 * (i + 1), 4) for i in range(side)],
        batches=[8 + i for i in range(side)],
        noises=[round(0.05 * i, 3) for i in range(side)],
        seeds=list(range(side)),
    )
    path = directory / "bench.yaml"
    path.write_text(text)
    return path


def fill_store(store: ResultsStore, run_ids: list[str]) -> None:
    """One record per run, written without fsync (this is setup, not what is measured)."""
    rng = random.Random(0)
    store.layout.records_dir.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for run_id in run_ids:
        roll = rng.random()
        status = "success" if roll < 0.7 else "failed" if roll < 0.9 else "cancelled"
        kind = {"success": None, "failed": "error", "cancelled": "cancelled"}[status]
        record = AttemptRecord(
            run_id=run_id,
            sweep="bench",
            attempt=1,
            status=status,
            job="linear-fit",
            seed=0,
            failure_kind=kind,
            failure_reason=None if kind is None else "bench",
            axes={"train.lr": 0.01, "seed": 0},
            spec={"job": "linear-fit"},
            metrics={"eval/r2": rng.random()} if status == "success" else {},
            started_at=now - 10,
            ended_at=now,
            host="bench",
            device="cpu",
            executor="local",
        )
        (store.layout.records_dir / record.file_name).write_text(record.to_json())


def timed(fn, repeat: int = 1) -> tuple[list[float], object]:
    """Wall times of ``repeat`` calls of ``fn`` and its last result."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return times, result


def spread(values: list[float]) -> str:
    """``median (min-max)`` in milliseconds."""
    return (
        f"{1000 * statistics.median(values):8.1f} ms  "
        f"({1000 * min(values):.0f}-{1000 * max(values):.0f})"
    )


def cached_bytecode_env(work: Path) -> dict[str, str]:
    """The environment with bytecode cached under ``work`` (as an installed package has it)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPYCACHEPREFIX": str(work / "pycache")}


def cli_process(
    args: list[str], repeat: int, env: dict[str, str]
) -> tuple[list[float], list[float], int]:
    """Wall and CPU times of ``repeat`` runs of ``python -m ablate.cli ARGS``; output bytes."""
    walls, cpus, size = [], [], 0
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-m", "ablate.cli", *args], capture_output=True, check=True, env=env
        ).stdout
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        size = len(out)
    return walls, cpus, size


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--keep", type=Path, default=None, help="work in DIR (kept)")
    args = parser.parse_args()
    os.environ.setdefault("ABLATE_MAX_POINTS", str(max(20_000, 2 * args.points)))  # the cap
    work = args.keep or Path(tempfile.mkdtemp(prefix="ablate-bench-plan-"))
    work.mkdir(parents=True, exist_ok=True)
    path = write_sweep(work, args.points)
    store = ResultsStore(work / "runs")

    t_expand, sweep = timed(lambda: load_sweep(path), repeat=args.repeats)
    n = len(sweep.runs)
    fill_store(store, [r.spec.run_id for r in sweep.runs])
    t_cold, _ = timed(lambda: make_plan(sweep, store, retries=1))
    t_warm, plan = timed(
        lambda: make_plan(sweep, ResultsStore(store.root), retries=1), repeat=args.repeats
    )
    t_rows, _ = timed(lambda: plan_table(plan, "bench"), repeat=args.repeats)
    fill_store(store, ["f" * 12])
    t_incr, _ = timed(lambda: make_plan(sweep, ResultsStore(store.root), retries=1))
    t_frame_cold, _ = timed(lambda: ResultsStore(store.root).dataframe())
    t_frame, frame = timed(lambda: ResultsStore(store.root).dataframe(), repeat=3)

    print(f"sweep: {n} points; store: {len(frame)} records  (work dir {work})")
    print(f"median of {args.repeats} repeats (min-max); processes: wall, then CPU (user + sys)")
    base = ["sweep", str(path), "--dry-run", "--runs-dir", str(store.root)]
    processes = (
        ("ablate --help (start-up)", ["--help"]),
        ("ablate sweep --dry-run", base),
        ("  ... -q", [*base, "-q"]),
        ("  ... --format csv", [*base, "--format", "csv"]),
        ("  ... --show all", [*base, "--show", "all"]),
    )
    env = cached_bytecode_env(work)
    for _label, cli_args in processes:  # compiles every module the timed runs import
        cli_process(cli_args, 1, env)
    goal = None
    for label, cli_args in processes:
        walls, cpus, size = cli_process(cli_args, args.repeats, env)
        goal = walls if cli_args is base else goal
        print(f"  {label:<32} {spread(walls)}   cpu {spread(cpus)}   {size / 1000:,.0f} kB out")
    print("in-process phases:")
    print(f"  {'expand (load_sweep)':<32} {spread(t_expand)}")
    print(f"  {'plan, warm index':<32} {spread(t_warm)}")
    print(f"  {'plan rows (plan_table)':<32} {spread(t_rows)}")
    print(f"  {'plan, cold index (first read)':<32} {spread(t_cold)}   (once per store)")
    print(f"  {'plan, after 1 new record':<32} {spread(t_incr)}")
    print(f"  {'DataFrame, first (parquet)':<32} {spread(t_frame_cold)}   (once per store)")
    print(f"  {'DataFrame of all records':<32} {spread(t_frame)}")
    median = statistics.median(goal or [float("inf")])
    verdict = "OK" if median < 1.0 else "OVER"
    print(
        f"  whole `ablate sweep --dry-run`: median {median * 1000:.0f} ms   goal < 1000 ms: "
        f"{verdict}"
    )
    print(f"  states: {plan.counts}")


if __name__ == "__main__":
    main()
