"""From a sweep and the results store to the runs behind each table row.

A report expands its sweep (specs only: no torch, no model code), groups the planned runs into
rows (by the sweep's ``label``, else by the axis values other than ``seed``) and looks up the
latest successful attempt of every run id in the results store. Failed and cancelled attempts are
counted, never used as results. Only the index rows of the sweep's run ids are parsed, so a store
of tens of thousands of records costs one parquet read.

A sweep with ``scales`` is expanded at full scale and at every named scale; the variant with the
most successful runs is reported (ties go to full scale), so ``ablate report sweeps/table3.yaml``
shows the tiny-twin runs of ``ablate sweep --scale tiny`` without a flag, labelled as such.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ablate.json_input import parse_json
from ablate.model.spec import is_tiny_spec
from ablate.spec.sweep import Sweep, load_sweep, row_key
from ablate.store.layout import RunsLayout
from ablate.store.results_store import ResultsStore

PREDICTIONS_TEMPLATE = "predictions_{split}.jsonl"
INDEX_COLUMNS = [
    *("run_id", "sweep", "attempt", "status", "seed", "run_dir", "metrics", "spec"),
    *("versions", "device"),  # the environment fingerprint of the protocol footer
    *("started_at", "ended_at"),  # the attempt's wall time (report.speed: GPU-h of other jobs)
]


@dataclass(frozen=True)
class RunResult:
    """The successful attempt of one run that a report uses.

    Attributes:
        run_id: the run id.
        seed: its seed.
        attempt: the attempt the result comes from (the latest successful one).
        metrics: the job's final metrics.
        run_dir: the run folder (for per-question predictions), if it exists.
        tiny: whether it ran on tiny twins or synthetic data.
        test_split: the split its ``test/*`` metrics were computed on.
        spec: the nested run spec as recorded (for the report's protocol footer).
        versions: Python and package versions recorded with the attempt.
        device: the GPU name (or ``cpu``) recorded with the attempt.
        duration_s: the attempt's wall time, when its start and end were recorded.
    """

    run_id: str
    seed: int | None
    attempt: int
    metrics: dict[str, float]
    run_dir: Path | None
    tiny: bool
    test_split: str = "test"
    spec: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    device: str | None = None
    duration_s: float | None = None

    def correctness(self) -> dict[str, bool] | None:
        """Pid -> correct from ``predictions_<test split>.jsonl``; ``None`` if there is none."""
        if self.run_dir is None:
            return None
        path = self.run_dir / PREDICTIONS_TEMPLATE.format(split=self.test_split)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, ValueError):  # missing, or not UTF-8
            return None
        lines = [line for line in text.splitlines() if line.strip()]
        try:  # one parse: ~10x faster than per line; bounded, as any file a user could replace
            objs = parse_json("[" + ",".join(lines) + "]", where=str(path), what="predictions")
            out = {str(obj["pid"]): bool(obj["correct"]) for obj in objs}
        except (ValueError, KeyError, TypeError):
            return None  # a damaged predictions file is not used for paired statistics
        return out or None


@dataclass
class RowRuns:
    """The planned runs of one table row and the results found for them.

    Attributes:
        key: the row's key: its label, or its non-seed axis values as text.
        label: the sweep label, if the sweep gives one.
        axes: the row's axis values without ``seed`` (dotted keys).
        planned: the planned run ids of the row (one per seed).
        results: successful results found (at most one per planned run id).
        failed: planned runs with attempts recorded but no success.
    """

    key: str
    label: str | None
    axes: dict[str, Any]
    planned: list[str] = field(default_factory=list)
    results: list[RunResult] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def values(self, metric: str) -> list[float]:
        """The metric over this row's results (runs without it are left out)."""
        return [r.metrics[metric] for r in self.results if metric in r.metrics]

    def correctness_matrix(self) -> tuple[list[str], np.ndarray] | None:
        """(pids, (seeds, Q) 0/1 array) over questions every run answered, or ``None``."""
        maps = [r.correctness() for r in self.results]
        if not maps or any(m is None for m in maps):
            return None
        common = sorted(set.intersection(*(set(m) for m in maps)))  # type: ignore[arg-type]
        if not common:
            return None
        matrix = np.array([[m[p] for p in common] for m in maps], dtype=bool)  # type: ignore[index]
        return common, matrix

    @property
    def tiny(self) -> bool:
        """Whether any result of the row comes from tiny twins or synthetic data."""
        return any(r.tiny for r in self.results)


@dataclass
class SweepResults:
    """A sweep's rows with their results, in the sweep's order."""

    sweep: Sweep
    rows: list[RowRuns]

    @property
    def tiny(self) -> bool:
        """Whether any result shown comes from tiny twins or synthetic data."""
        return any(row.tiny for row in self.rows)

    @property
    def n_results(self) -> int:
        """How many successful runs were found."""
        return sum(len(row.results) for row in self.rows)


def _sweep_variants(
    sweep_path: Path, scale: str | None, overrides: Mapping[str, Any] | None
) -> list[Sweep]:
    if scale is not None:
        return [load_sweep(sweep_path, scale=scale, overrides=overrides)]
    full = load_sweep(sweep_path, overrides=overrides)
    return [
        full,
        *(load_sweep(sweep_path, scale=name, overrides=overrides) for name in full.scales),
    ]


def collect_sweep(
    sweep_path: Path | str,
    runs_root: Path | str,
    *,
    scale: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> SweepResults:
    """Expand a sweep and attach the store's successful results to its rows.

    Args:
        sweep_path: the sweep YAML.
        runs_root: the runs root holding the results store.
        scale: report this scale only (``None``: the variant with the most results).
        overrides: ``--set`` values, applied as in ``ablate sweep``.
    """
    store = ResultsStore(runs_root)
    variants = _sweep_variants(Path(sweep_path), scale, overrides)
    wanted = {run.spec.run_id for sweep in variants for run in sweep.runs}
    found = _latest_attempts(store, wanted)
    best: SweepResults | None = None
    for sweep in variants:
        results = _attach(sweep, found, RunsLayout(Path(runs_root)))
        if best is None or results.n_results > best.n_results:
            best = results
    assert best is not None
    return best


def _latest_attempts(store: ResultsStore, run_ids: set[str]) -> dict[str, dict[str, Any]]:
    """Run id -> {"success": row of its latest success or None, "failed": bool}."""
    import pyarrow as pa
    import pyarrow.compute as pc

    table = store.index_table()
    if table.num_rows == 0:
        return {}
    mask = pc.and_(table.column("valid"), pc.is_in(table.column("run_id"), pa.array(list(run_ids))))
    rows = table.filter(mask).select(INDEX_COLUMNS)
    out: dict[str, dict[str, Any]] = {}
    for row in rows.to_pylist():
        entry = out.setdefault(row["run_id"], {"success": None, "failed": False})
        if row["status"] != "success":
            entry["failed"] = True
            continue
        current = entry["success"]
        if current is None or row["attempt"] > current["attempt"]:
            entry["success"] = row
    return out


def _attach(sweep: Sweep, found: dict[str, dict[str, Any]], layout: RunsLayout) -> SweepResults:
    rows: dict[str, RowRuns] = {}
    for run in sweep.runs:
        key, axes = row_key(run)
        row = rows.setdefault(key, RowRuns(key=key, label=run.label, axes=axes))
        run_id = run.spec.run_id
        row.planned.append(run_id)
        entry = found.get(run_id)
        if entry is None:
            continue
        success = entry["success"]
        if success is None:
            row.failed.append(run_id)
            continue
        spec = json.loads(success["spec"]) if success["spec"] else run.spec.to_dict()
        row.results.append(
            RunResult(
                run_id=run_id,
                seed=success["seed"],
                attempt=success["attempt"],
                metrics=json.loads(success["metrics"]) if success["metrics"] else {},
                run_dir=_run_dir(layout, success),
                tiny=is_tiny_spec(spec),
                test_split=str((spec.get("data") or {}).get("test_split") or "test"),
                spec=spec,
                versions=json.loads(success["versions"]) if success.get("versions") else {},
                device=success.get("device"),
                duration_s=_duration(success),
            )
        )
    return SweepResults(sweep, list(rows.values()))


def _duration(row: dict[str, Any]) -> float | None:
    started, ended = row.get("started_at"), row.get("ended_at")
    return None if started is None or ended is None else ended - started


def _run_dir(layout: RunsLayout, row: dict[str, Any]) -> Path | None:
    candidates = [layout.run_dir(str(row["sweep"]), str(row["run_id"]))]
    if row.get("run_dir"):
        candidates.append(Path(row["run_dir"]))
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return None
