"""Benchmark: what following a sweep on SLURM costs: submission, one status look, end to end.

    python bench/bench_slurm.py [--runs 200] [--parallel 2] [--no-run]

Needs a SLURM controller whose nodes you may drain for a moment (``.ci/slurm-up`` starts a
one-node one on loopback). Submits a sweep of ``--runs`` one-step ``linear-fit`` runs through the
real ``slurm`` executor (one job array, ``%--parallel``), then measures:

* submission: planning, ``spec.json`` per run and one ``sbatch`` for the array;
* one look (``reattach_slurm_sweep``: one ``squeue`` per 100 arrays, ``slurm.json`` per run,
  lost-attempt check), with every task still queued and again once all have ended;
* end to end, unless ``--no-run``: from submission until every run has a success record (on a
  small node this is the node's throughput, not ``ablate``'s; the per-run figure subtracts nothing).
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

from ablate.execution.slurm.executor import SlurmExecutor, SlurmResources
from ablate.execution.slurm.watch import reattach_slurm_sweep, slurm_available, wait_for_slurm_sweep
from ablate.orchestrate.orchestrator import run_sweep
from ablate.spec.sweep import load_sweep
from ablate.store import ResultsStore

SWEEP = """\
name: slurm-bench
base:
  job: linear-fit
  train: {{steps: 1, checkpoint_every: 1}}
seeds: {seeds}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--parallel", type=int, default=2, help="%%N of the job array")
    parser.add_argument("--no-run", action="store_true", help="cancel the jobs after timing")
    args = parser.parse_args()
    why_not = slurm_available()
    if why_not is not None:
        raise SystemExit(f"bench_slurm: {why_not} (run .ci/slurm-up)")
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:  # nodes must see the runs folder
        work = Path(tmp)
        path = work / "slurm-bench.yaml"
        path.write_text(SWEEP.format(seeds=list(range(args.runs))))
        sweep = load_sweep(path)
        store = ResultsStore(work / "runs")
        resources = SlurmResources(cpus=1, mem_gb=0.5, time_min=30, array_parallelism=args.parallel)
        executor = SlurmExecutor(resources, runs_root=store.root, grace_s=10)
        nodes = subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%N"], capture_output=True, text=True
        ).stdout.split()
        for node in nodes:  # drained: the look below sees every task pending
            subprocess.run(
                ["scontrol", "update", f"NodeName={node}", "State=DRAIN", "Reason=bench_slurm"],
                check=False,
            )
        try:
            start = time.perf_counter()
            run_sweep(
                sweep, executor=executor, store=store, install_signal_handlers=False, detach=True
            )
            submit_s = time.perf_counter() - start
            start = time.perf_counter()
            state = reattach_slurm_sweep(store, sweep.name)
            look_queued_s = time.perf_counter() - start
        finally:
            for node in nodes:
                subprocess.run(
                    ["scontrol", "update", f"NodeName={node}", "State=RESUME"], check=False
                )
        print(f"runs: {args.runs} (one job array, %{args.parallel})")
        print(f"submission: {submit_s:.2f} s ({1000 * submit_s / args.runs:.1f} ms per run)")
        print(f"one status look, all queued ({state.summary()}): {look_queued_s:.2f} s")
        if args.no_run:
            array = {str(i["job_id"]).split("_")[0] for i in state.jobs.values()}
            subprocess.run(["scancel", *sorted(array)], check=False)
            return
        start = time.perf_counter()
        wait_for_slurm_sweep(store, sweep.name, poll_s=2.0)
        end_to_end_s = time.perf_counter() - start + submit_s
        done = sum(1 for s in store.summaries() if s.status.value == "success")
        start = time.perf_counter()
        state = reattach_slurm_sweep(store, sweep.name)
        look_ended_s = time.perf_counter() - start
        print(f"one status look, all ended ({state.summary()}): {look_ended_s:.2f} s")
        print(
            f"end to end: {end_to_end_s:.1f} s for {done} successful runs "
            f"({end_to_end_s / max(done, 1):.2f} s per run at %{args.parallel})"
        )


if __name__ == "__main__":
    main()
