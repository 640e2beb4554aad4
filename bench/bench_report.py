"""Benchmark: ``ablate report`` over a results store of 10,000 records (target: under 2 s).

    PYTHONPATH=. .venv/bin/python bench/bench_report.py [--records 10000] [--repeats 5] [--keep DIR]

The store holds the tiny Table 3 sweep's 11 runs (with 4,241-question prediction files, the size
of the ScienceQA test split) among thousands of other sweeps' records, a fifth of them failed.
Prints: the cold index build (first read of every record file: the store's cost, paid once),
then the warm report (what a user waits for after the first time) with and without figures, in
process and as the whole ``ablate report`` process (start-up and imports included). Warm figures
are the median of ``--repeats`` runs with the spread (min-max): the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ablate.spec.sweep import load_sweep
from ablate.store.record import AttemptRecord, AttemptStatus, FailureKind
from ablate.store.results_store import ResultsStore

REPO = Path(__file__).resolve().parents[1]
QUESTIONS = 4241


def fill(root: Path, n_records: int) -> None:
    store = ResultsStore(root)
    records_dir = store.layout.records_dir
    records_dir.mkdir(parents=True, exist_ok=True)
    sweep = load_sweep(REPO / "sweeps/table3.yaml", scale="tiny")
    rng = np.random.default_rng(0)
    written = 0
    for i, run in enumerate(sweep.runs):
        run_dir = root / sweep.name / run.spec.run_id
        run_dir.mkdir(parents=True)
        correct = rng.random(QUESTIONS) < 0.6 + 0.02 * i
        with (run_dir / "predictions_test.jsonl").open("w") as fh:
            for q, ok in enumerate(correct):
                fh.write(
                    json.dumps(
                        {
                            "pid": str(q),
                            "pred": 0,
                            "raw": "The answer is A.",
                            "parsed": True,
                            "correct": bool(ok),
                        }
                    )
                    + "\n"
                )
        rec = AttemptRecord(
            run_id=run.spec.run_id,
            sweep=sweep.name,
            attempt=1,
            status=AttemptStatus.SUCCESS,
            job="mmt",
            seed=0,
            axes=run.axes,
            spec=run.spec.to_dict(),
            metrics={"test/Avg": 100 * correct.mean()},
            run_dir=str(run_dir),
        )
        (records_dir / rec.file_name).write_text(rec.to_json())
        written += 1
    spec = sweep.runs[0].spec.to_dict()
    while written < n_records:
        k = written
        failed = k % 5 == 0
        rec = AttemptRecord(
            run_id=f"other{k:07d}",
            sweep=f"other{k % 40}",
            attempt=1 + k % 2,
            status=AttemptStatus.FAILED if failed else AttemptStatus.SUCCESS,
            failure_kind=FailureKind.ERROR if failed else None,
            job="mmt",
            seed=k % 3,
            axes={"adapter.dim": 4 << (k % 4)},
            spec=spec,
            metrics={} if failed else {f"test/{c}": 80.0 + k % 7 for c in ("Avg", "NAT", "SOC")},
        )
        (records_dir / rec.file_name).write_text(rec.to_json())
        written += 1


def spread(values: list[float]) -> str:
    """``median (min-max)`` in seconds."""
    return f"{statistics.median(values):5.2f}s ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--keep", type=Path, default=None, help="build the store here, keep it")
    args = parser.parse_args()
    tmp = Path(args.keep or tempfile.mkdtemp(prefix="bench_report_"))
    root = tmp / "runs"
    if root.exists():
        shutil.rmtree(root)
    t0 = time.perf_counter()
    fill(root, args.records)
    print(f"store: {args.records} records written in {time.perf_counter() - t0:.1f}s")

    t0 = time.perf_counter()
    n = len(ResultsStore(root).index_table())
    print(
        f"cold index build (first read of {n} record files, once): {time.perf_counter() - t0:.2f}s"
    )

    t0 = time.perf_counter()
    from ablate.report.build import render_report

    import_s = time.perf_counter() - t0
    print(f"import ablate.report: {import_s:.2f}s (once per process)")
    print(f"warm report table3 over {args.records} records, median of {args.repeats} (min-max):")
    for label, plots in (("all formats, no figures", False), ("all formats + figures", True)):
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            [out] = render_report(
                "table3",
                runs_root=root,
                fmt="all",
                out_dir=tmp / "out",
                reports_dir=REPO / "reports",
                plots=plots,
            )
            times.append(time.perf_counter() - t0)
            assert sum(r["n"] or 0 for r in out.table.records) == 11, "expected the 11 tiny runs"
        print(f"  in process, {label:<26} {spread(times)}")
    for label, flag in (
        ("all formats, no figures", "--no-plots"),
        ("all formats + figures", "--plots"),
    ):
        command = [
            sys.executable,
            "-m",
            "ablate.cli",
            "report",
            "table3",
            "-f",
            "all",
            flag,
            "--runs-dir",
            str(root),
            "--out",
            str(tmp / "out"),
            "--reports-dir",
            str(REPO / "reports"),
        ]
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            times.append(time.perf_counter() - t0)
        verdict = "OK" if statistics.median(times) < 2.0 else "OVER 2 s"
        print(f"  whole process, {label:<23} {spread(times)}   goal < 2 s: {verdict}")
    if args.keep is None:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
