"""Benchmark: what tracking one run costs, ablate's hooks against plain MLflow calls (goal >= 10x).

    PYTHONPATH=. .venv/bin/python bench/bench_tracking.py [--runs 5] [--repeats 5]

One tracked run, as the table2 sweep at ``--scale tiny`` produces it: the flattened spec as params
(69 today), 100 step losses in ``metrics.jsonl``, 10 final metrics (the ScienceQA accuracy
columns), a worker log. Its cost is timed on an embedded SQLite store in three ways:

* ``naive``: what a hand-written script does: ``create_run``, one ``log_param`` per param,
  ``set_tag`` per tag, one ``log_metric`` per value, ``set_terminated``;
* ``one log_batch``: ``create_run``, one ``log_batch`` with everything, ``set_terminated`` (the
  floor for one run's writes);
* ``ablate hooks``: :class:`MlflowTracker`'s hooks around ``--runs`` runs of one sweep (sweep
  start and end shared by them, counted per run), as the sweep loop calls them; no job runs, so
  only the tracking is timed. Its artifact uploads (spec, accuracy table, redacted worker log)
  are timed apart: the other two upload none.

Each figure is the median per run over ``--repeats`` repeats, with the spread (min-max); the
machine may be shared, so medians of several repeats, never one run. It also counts the client
calls the hooks make per run (``log_batch``, ``create_run``, searches, uploads).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from ablate.spec.sweep import load_sweep
from ablate.store.record import AttemptRecord
from ablate.tracking.config import flatten_params
from ablate.tracking.mlflow_tracker import MlflowTracker

REPO = Path(__file__).resolve().parents[1]
STEPS = 100
FINAL = ("NAT", "SOC", "LAN", "TXT", "IMG", "NO", "G1-6", "G7-12", "Avg", "unparseable")
TAGS = {
    "ablate.sweep": "bench",
    "ablate.attempt": "1",
    "ablate.status": "success",
    "ablate.host": "bench",
    "ablate.gpu": "cpu",
    "ablate.executor": "inline",
}


def spread(values: list[float]) -> str:
    """``median (min-max)`` in milliseconds."""
    return (
        f"{1000 * statistics.median(values):7.1f} ms  "
        f"({1000 * min(values):.1f}-{1000 * max(values):.1f})"
    )


def step_rows(start_ms: int) -> list[tuple[str, float, int, int]]:
    return [("train/loss", 2.0 / (1 + s), start_ms + s, s) for s in range(1, STEPS + 1)]


def final_metrics() -> dict[str, float]:
    return {f"test/{name}": 50.0 + i for i, name in enumerate(FINAL)}


def naive(client: Any, experiment_id: str, params: dict[str, str]) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    run_id = client.create_run(experiment_id, run_name="naive").info.run_id
    for key, value in params.items():
        client.log_param(run_id, key, value)
    for key, value in TAGS.items():
        client.set_tag(run_id, key, value)
    for key, value, stamp, step in step_rows(int(time.time() * 1000)):
        client.log_metric(run_id, key, value, timestamp=stamp, step=step)
    for key, value in final_metrics().items():
        client.log_metric(run_id, key, value, step=STEPS)
    client.set_terminated(run_id, "FINISHED")
    return time.perf_counter() - t0, time.process_time() - c0


def one_batch(client: Any, experiment_id: str, params: dict[str, str]) -> tuple[float, float]:
    from mlflow.entities import Metric, Param, RunTag

    t0, c0 = time.perf_counter(), time.process_time()
    run_id = client.create_run(experiment_id, run_name="batch").info.run_id
    now = int(time.time() * 1000)
    metrics = [Metric(k, v, ts, s) for k, v, ts, s in step_rows(now)]
    metrics += [Metric(k, v, now, STEPS) for k, v in final_metrics().items()]
    client.log_batch(
        run_id,
        metrics=metrics,
        params=[Param(k, v) for k, v in params.items()],
        tags=[RunTag(k, v) for k, v in TAGS.items()],
        synchronous=True,
    )
    client.set_terminated(run_id, "FINISHED")
    return time.perf_counter() - t0, time.process_time() - c0


class CountingTracker(MlflowTracker):
    """Times the hooks, and the artifact uploads apart; counts the client calls."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hook_s = 0.0
        self.hook_cpu_s = 0.0
        self.artifact_s = 0.0
        self.calls: Counter[str] = Counter()
        for name in (
            "log_batch",
            "create_run",
            "find_run",
            "run_status",
            "update_run",
            "set_terminated",
            "log_artifact",
            "experiment_id",
        ):
            setattr(self.client, name, self._counted(name, getattr(self.client, name)))

    def _counted(self, name: str, method: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            if name != "log_artifact":
                return method(*args, **kwargs)
            t0 = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.artifact_s += time.perf_counter() - t0

        return call

    def timed(self, hook: Any, *args: Any) -> Any:
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            return hook(*args)
        finally:
            self.hook_s += time.perf_counter() - t0
            self.hook_cpu_s += time.process_time() - c0


def write_run_folder(run_dir: Path, spec: dict[str, Any]) -> None:
    """What a finished attempt leaves: spec, 100 metric lines, a worker log."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "spec.json").write_text(json.dumps(spec, indent=2))
    now = time.time()
    lines = [
        json.dumps({"step": s, "time": now + s / 1000, "train/loss": 2.0 / (1 + s)})
        for s in range(1, STEPS + 1)
    ]
    (run_dir / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    (run_dir / "worker.log").write_text(
        "".join(f"step {s} loss {2.0 / (1 + s):.4f}\n" for s in range(1, STEPS + 1))
    )


def ablate_hooks(sweep: Any, root: Path, uri: str) -> CountingTracker:
    tracker = CountingTracker(root, uri)
    tracker.timed(tracker.on_sweep_start, sweep, None)
    for run in sweep.runs:
        spec = run.spec.to_dict()
        run_dir = root / sweep.name / run.spec.run_id
        tracker.timed(tracker.on_attempt_start, run, 1)
        write_run_folder(run_dir, spec)
        now = time.time()
        record = AttemptRecord(
            run_id=run.spec.run_id,
            sweep=sweep.name,
            attempt=1,
            status="success",
            job=run.spec.job,
            seed=run.spec.seed,
            axes=run.axes,
            spec=spec,
            metrics=final_metrics(),
            started_at=now - 1,
            ended_at=now,
            host="bench",
            device="cpu",
            executor="inline",
            run_dir=str(run_dir),
        )
        tracker.timed(tracker.on_attempt_end, run, record)
    tracker.timed(tracker.on_sweep_end, sweep, False)
    return tracker


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sweep", type=Path, default=REPO / "sweeps/table2.yaml")
    parser.add_argument("--runs", type=int, default=5, help="runs per sweep for the hooks")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    full = load_sweep(args.sweep, scale="tiny")
    tmp = Path(tempfile.mkdtemp(prefix="bench_tracking_"))
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    from mlflow import MlflowClient

    t0 = time.perf_counter()
    client = MlflowClient(tracking_uri=uri)
    client.search_experiments()
    print(f"one-time: import mlflow + create the SQLite store: {time.perf_counter() - t0:.1f}s")
    params = flatten_params(full.runs[0].spec.to_dict())
    print(
        f"one run: {len(params)} params, {STEPS} step losses, {len(FINAL)} final metrics, "
        f"{len(TAGS)} tags; SQLite store {tmp}"
    )
    experiment_id = client.create_experiment("bench-plain")
    runs = (full.runs * args.runs)[: args.runs]
    times: dict[str, list[float]] = {name: [] for name in ("naive", "batch", "hooks", "art")}
    cpu: dict[str, list[float]] = {name: [] for name in ("naive", "batch", "hooks")}
    calls: Counter[str] = Counter()
    one_batch(client, experiment_id, params)  # warm-up: first writes pay for caches
    for repeat in range(args.repeats):
        for name, fn in (("naive", naive), ("batch", one_batch)):
            wall, cpu_s = fn(client, experiment_id, params)
            times[name].append(wall)
            cpu[name].append(cpu_s)
        # a fresh sweep name and runs root each repeat: new child runs, as a first sweep makes
        unique = [dataclasses.replace(r, axes={**r.axes, "bench.repeat": repeat}) for r in runs]
        sweep = dataclasses.replace(full, name=f"bench{repeat}", runs=tuple(unique), scale=None)
        tracker = ablate_hooks(sweep, tmp / f"runs{repeat}", uri)
        times["hooks"].append(tracker.hook_s / len(runs))
        cpu["hooks"].append(tracker.hook_cpu_s / len(runs))
        times["art"].append(tracker.artifact_s / len(runs))
        calls = tracker.calls
    print(f"per run, median of {args.repeats} repeats (min-max); wall, then CPU of this process:")
    rows = (
        ("naive per-call logging", "naive"),
        ("one log_batch", "batch"),
        ("ablate hooks", "hooks"),
    )
    for label, name in rows:
        print(f"  {label:<24} {spread(times[name])}   cpu {spread(cpu[name])}")
    print(f"    of which artifacts     {spread(times['art'])}")
    print(f"  (hooks: runs of a {len(runs)}-run sweep; sweep start and end shared by them)")
    per_run = ", ".join(f"{name} {n / len(runs):g}" for name, n in sorted(calls.items()))
    print(f"  client calls per run (hooks): {per_run}")
    for what, table in (("wall", times), ("cpu", cpu)):
        ratio = statistics.median(table["naive"]) / statistics.median(table["hooks"])
        verdict = "OK" if ratio >= 10 else "UNDER 10x"
        print(f"  naive / ablate hooks ({what}): {ratio:.1f}x   goal >= 10x: {verdict}")
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
