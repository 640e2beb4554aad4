"""Benchmark: expand and plan a 10,000-point sweep against a store of 10,000 records (goal < 1 s).

    python bench/bench_plan.py [--points 10000] [--keep DIR]

Builds a ``linear-fit`` sweep of 10 x 10 x 10 grid points x 10 seeds, writes one record per run
(70% success, 20% failed, 10% cancelled) straight into a fresh store, then times:

- expansion (``load_sweep``: YAML -> 10,000 validated RunSpecs with run ids);
- planning with a cold index (first read of 10,000 record files: once per store);
- planning with a warm index (what every ``ablate sweep`` / ``ablate status`` pays);
- planning after one new record (incremental index refresh);
- the full DataFrame of all records (first call builds the parquet index);
- a fresh interpreter doing imports + expansion + planning (what one CLI call pays).

Planning reads the plain-text summary index and never imports pyarrow or pandas.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ablate.orchestrate.plan import make_plan
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


def timed(fn, repeat: int = 1) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


FRESH = """
import time
t0 = time.perf_counter()
from ablate.orchestrate.plan import make_plan
from ablate.spec.sweep import load_sweep
from ablate.store import ResultsStore
t1 = time.perf_counter()
sweep = load_sweep({path!r})
t2 = time.perf_counter()
plan = make_plan(sweep, ResultsStore({root!r}), retries=1)
t3 = time.perf_counter()
print(f"{{t1 - t0:.3f}} {{t2 - t1:.3f}} {{t3 - t2:.3f}}")
"""


def fresh_process(path: Path, root: Path) -> tuple[float, list[float]]:
    """Wall time of a new interpreter that imports, expands and plans (what a CLI call pays)."""
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", FRESH.format(path=str(path), root=str(root))],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return time.perf_counter() - start, [float(x) for x in out.split()]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--keep", type=Path, default=None, help="work in DIR (kept)")
    args = parser.parse_args()
    os.environ.setdefault("ABLATE_MAX_POINTS", str(max(20_000, 2 * args.points)))  # the cap
    work = args.keep or Path(tempfile.mkdtemp(prefix="ablate-bench-plan-"))
    work.mkdir(parents=True, exist_ok=True)
    path = write_sweep(work, args.points)
    store = ResultsStore(work / "runs")

    t_expand, sweep = timed(lambda: load_sweep(path))
    n = len(sweep.runs)
    fill_store(store, [r.spec.run_id for r in sweep.runs])
    t_cold, _ = timed(lambda: make_plan(sweep, store, retries=1))
    t_warm, plan = timed(lambda: make_plan(sweep, ResultsStore(store.root), retries=1), repeat=5)
    fill_store(store, ["f" * 12])
    t_incr, _ = timed(lambda: make_plan(sweep, ResultsStore(store.root), retries=1))
    t_frame_cold, _ = timed(lambda: ResultsStore(store.root).dataframe())
    t_frame, frame = timed(lambda: ResultsStore(store.root).dataframe(), repeat=3)

    print(f"sweep: {n} points; store: {len(frame)} records  (work dir {work})")
    print(f"  expand (load_sweep)               {t_expand * 1000:8.1f} ms")
    print(f"  plan, cold index (first read)     {t_cold * 1000:8.1f} ms   (once per store)")
    print(f"  plan, warm index                  {t_warm * 1000:8.1f} ms")
    print(f"  plan, after 1 new record          {t_incr * 1000:8.1f} ms")
    print(f"  DataFrame, first (builds parquet) {t_frame_cold * 1000:8.1f} ms   (once per store)")
    print(f"  DataFrame of all records          {t_frame * 1000:8.1f} ms")
    wall, (t_imp, t_exp, t_plan) = fresh_process(path, store.root)
    print(
        f"  fresh process, warm index         {wall * 1000:8.1f} ms   (imports {t_imp * 1000:.0f}, "
        f"expand {t_exp * 1000:.0f}, plan {t_plan * 1000:.0f})"
    )
    total = t_expand + t_warm
    verdict = "OK" if total < 1.0 else "OVER"
    print(f"  expand + plan (warm)              {total * 1000:8.1f} ms   goal < 1000 ms: {verdict}")
    print(f"  states: {plan.counts}")


if __name__ == "__main__":
    main()
