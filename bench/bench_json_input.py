"""Benchmark: what the bounded JSON reader adds to reading a full-size ScienceQA problems.json.

    python bench/bench_json_input.py [--problems 21208] [--repeats 7]

The real ``problems.json`` (21,208 problems, about 30 MB) is not on this machine; the sample's
1,773 real problems are repeated under new pids to the real count, written with ``indent=4`` like
the official file. Timed, interleaved, over ``--repeats`` (median and minimum: on a shared machine
the minimum is the least disturbed):

- plain ``json.load`` (what the loader did before: no depth bound, codec errors without a path);
- :func:`ablate.json_input.read_json_file` (UTF-8 check naming the file, depth pre-scan, parse);
- the pre-scan alone (:func:`ablate.json_input.deeper_than`);
- ``load_official(root, "test")`` end to end (both JSON files, 4,241 validated problems);
- 4,241 JSONL prediction lines, per line plain vs bounded.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ablate.data.scienceqa import load_official
from ablate.json_input import MAX_DEPTH, deeper_than, parse_jsonl, read_json_file

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "scienceqa-sample"


def write_full_size(root: Path, n_problems: int) -> None:
    """problems.json with ``n_problems`` (the sample repeated), and a 20/20 % val/test split."""
    sample = json.loads((SAMPLE / "problems.json").read_text(encoding="utf-8"))
    records = list(sample.values())
    problems = {str(i + 1): records[i % len(records)] for i in range(n_problems)}
    pids = list(problems)
    fifth = n_problems // 5
    splits = {"train": pids[2 * fifth :], "val": pids[:fifth], "test": pids[fifth : 2 * fifth]}
    (root / "problems.json").write_text(json.dumps(problems, indent=4), encoding="utf-8")
    (root / "pid_splits.json").write_text(json.dumps(splits), encoding="utf-8")


def times_ms(cases: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Milliseconds of every repeat per case, the cases interleaved so load hits them all."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            times[name].append(1000 * (time.perf_counter() - start))
    return times


def main() -> None:
    """Write the files, time the readers, print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=21208)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_full_size(root, args.problems)
        path = root / "problems.json"
        raw = path.read_bytes()
        lines = b"\n".join(
            json.dumps({"pid": str(i), "pred": i % 4, "raw": 'The answer is A. "[1]"'}).encode()
            for i in range(4241)
        )

        def plain() -> object:
            with path.open(encoding="utf-8") as fh:
                return json.load(fh)

        results = times_ms(
            {
                "json.load (before)": plain,
                "read_json_file": lambda: read_json_file(path, "problems"),
                "pre-scan alone": lambda: deeper_than(raw, MAX_DEPTH),
                "load_official test": lambda: load_official(root, "test", image_placeholder=True),
                "4241 JSONL lines, json.loads": lambda: [
                    json.loads(line) for line in lines.split(b"\n")
                ],
                "4241 JSONL lines, bounded": lambda: parse_jsonl(lines, source="p", what="x"),
            },
            args.repeats,
        )
    print(f"problems.json: {len(raw) / 1e6:.1f} MB, {args.problems} problems")
    print(f"{'':32s} {'median':>8s} {'min':>8s}")
    for name, values in results.items():
        print(f"{name:32s} {statistics.median(values):8.1f} {min(values):8.1f} ms")
    for stat in (statistics.median, min):
        before, after = stat(results["json.load (before)"]), stat(results["read_json_file"])
        print(
            f"bounded reading adds {after - before:.0f} ms ({100 * (after / before - 1):.0f} %), "
            f"by {stat.__name__}"
        )


if __name__ == "__main__":
    main()
