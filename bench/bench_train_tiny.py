"""Time and score tiny mmt runs (tiny twins + synthetic ScienceQA, CPU): the embedded default.

Loads a sweep at ``--scale tiny``, optionally overrides dotted keys, runs the chosen rows in this
process and prints one JSON line per run (accuracy, loss, wall times) plus a summary. This is the
measurement behind the ``scales.tiny`` block of ``sweeps/_paper.yaml``: the tiny default must
finish each row in well under a minute on a 2-core CPU and learn (validation accuracy clearly
above chance).

    python bench/bench_train_tiny.py sweeps/table3.yaml --rows 0 --set train.epochs=6
    python bench/bench_train_tiny.py sweeps/table3.yaml            # every row
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ablate.jobs.context import JobContext  # noqa: E402
from ablate.spec.dotted import set_dotted  # noqa: E402
from ablate.spec.run_spec import build_run_spec  # noqa: E402
from ablate.spec.sweep import load_sweep  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", nargs="?", default="sweeps/table3.yaml")
    parser.add_argument("--rows", default="all", help="comma-separated row indices, or 'all'")
    parser.add_argument("--set", action="append", default=[], help="dotted.key=yaml_value")
    parser.add_argument(
        "--seeds", default=None, help="comma-separated seeds (default: the sweep's)"
    )
    args = parser.parse_args()

    from ablate.data.scienceqa import load_scienceqa, resolve_dataset_root
    from ablate.jobs.mmt_recipe import run_mmt

    sweep = load_sweep(args.sweep, scale="tiny")
    rows = (
        list(range(len(sweep.runs)))
        if args.rows == "all"
        else [int(r) for r in args.rows.split(",")]
    )
    results = []
    start = time.perf_counter()
    for row in rows:
        planned = sweep.runs[row]
        data = planned.spec.to_dict()
        for item in args.set:
            key, _, value = item.partition("=")
            set_dotted(data, key, yaml.safe_load(value))
        seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else [data["seed"]]
        for seed in seeds:
            data["seed"] = seed
            spec = build_run_spec(data)
            with tempfile.TemporaryDirectory() as tmp:
                ctx = JobContext(run_dir=Path(tmp))
                t0, c0 = time.perf_counter(), time.process_time()
                metrics = run_mmt(spec, ctx)
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            cfg = spec.config
            val = load_scienceqa(resolve_dataset_root(cfg.data), cfg.data.val_split)
            chance = 100.0 * sum(1.0 / len(p.choices) for p in val) / len(val)
            out = {
                "row": row,
                "label": planned.label,
                "seed": seed,
                "adapter": cfg.adapter.name,
                "wall_s": round(wall, 1),
                "cpu_s": round(cpu, 1),  # wall minus what other processes took from us
                "val/Avg": round(metrics["val/Avg"], 2),
                "val/chance": round(chance, 2),
                "test/Avg": round(metrics["test/Avg"], 2),
                "val/IMG": round(metrics.get("val/IMG", math.nan), 2),
                "val/TXT": round(metrics.get("val/TXT", math.nan), 2),
                "val/NO": round(metrics.get("val/NO", math.nan), 2),
                "val/unparseable": metrics["val/unparseable"],
                "train/loss": round(metrics["train/loss"], 4),
                "train/samples_per_s": round(metrics["train/samples_per_s"], 1),
                "time/setup_s": round(metrics["time/setup_s"], 1),
                "time/train_s": round(metrics["time/train_s"], 1),
                "time/eval_s": round(metrics["time/eval_s"], 1),
                "trainable": int(metrics["train/trainable_params"]),
            }
            results.append(out)
            print(json.dumps(out), flush=True)
    total = time.perf_counter() - start
    print(json.dumps({"runs": len(results), "total_wall_s": round(total, 1)}))


if __name__ == "__main__":
    main()
