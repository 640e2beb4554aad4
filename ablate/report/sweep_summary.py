"""The summary a sweep invocation's parent run carries once the sweep loop ends.

The parent run is where a reader of the MLflow UI lands for "how did this sweep go": it gets the
table ``ablate report`` renders for the sweep (markdown, HTML and the plot, as artifacts), a table
of the sweep's runs with a link to each child run, the counts of succeeded, failed and not-run
runs and the best run's accuracy (metrics at step 0, so the charts draw bars), the best run's row,
seed and child as tags, and all of it as the run's description (``mlflow.note.content``, shown
on the run's page). Everything is read from the results store, as ``ablate report`` reads it.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ablate.store.layout import RunsLayout
from ablate.store.run_folder import read_tracking_link
from ablate.tracking.experiment_view import NOTE_TAG, run_path
from ablate.tracking.spool import is_local_ref

if TYPE_CHECKING:
    from ablate.report.collect import SweepResults
    from ablate.report.spec import ReportSpec
    from ablate.report.tables import Table
    from ablate.spec.sweep import Sweep
    from ablate.tracking.client import TrackingClient

MAX_RUN_NOTE = 7_900  # MLflow keeps run tag values up to 8,000 characters
REPORT_DIR = "report"


@dataclass(frozen=True)
class BestRun:
    """The sweep's run with the highest value of the report's metric."""

    row: str
    seed: int | None
    run_id: str
    value: float
    child: str | None  # its MLflow run, when the run folder links one


@dataclass
class SweepSummary:
    """What the parent run was given.

    Attributes:
        metric: the report's metric (``test/Avg`` for the paper's tables).
        planned: runs the sweep plans.
        succeeded: runs with a successful attempt in the store.
        failed: runs whose attempts all failed or were cancelled.
        best: the best successful run, if any.
        note: the parent's description (markdown).
        artifacts: the parent's artifacts (paths inside its artifact root).
    """

    metric: str
    planned: int
    succeeded: int
    failed: int
    best: BestRun | None
    note: str
    artifacts: list[str]

    @property
    def not_run(self) -> int:
        """Planned runs with no attempt in the store."""
        return self.planned - self.succeeded - self.failed


def report_spec_for(sweep: Sweep) -> ReportSpec:
    """The report spec ``ablate report <sweep file>`` would use (a plain table if none fits)."""
    from ablate.errors import AblateError
    from ablate.report.build import plain_spec, resolve_targets
    from ablate.report.render import DEFAULT_REPORTS_DIR

    try:
        return resolve_targets(sweep.path, DEFAULT_REPORTS_DIR)[0]
    except (AblateError, OSError, ValueError):
        return plain_spec(sweep.path)


def summarize_sweep(
    client: TrackingClient,
    parent: str,
    sweep: Sweep,
    *,
    runs_root: Path,
    experiment_id: str,
) -> SweepSummary:
    """Log the sweep's summary to its parent run (see the module docstring).

    Args:
        client: the tracking client of the sweep's store (the links name its runs).
        parent: the parent run of this invocation.
        sweep: the sweep.
        runs_root: the runs root holding the results store.
        experiment_id: the sweep's experiment (a local reference while offline: no links).
    """
    from ablate.report.build import write_report
    from ablate.report.collect import collect_sweep
    from ablate.report.render import to_markdown
    from ablate.report.tables import build_table

    spec = report_spec_for(sweep)
    results = collect_sweep(spec.sweep_path, runs_root, scale=sweep.scale)
    table = build_table(spec, results)
    children = _child_runs(results, RunsLayout(Path(runs_root)), client.public_uri)
    runs, best = _runs_table(spec.metric, results, children, experiment_id)
    succeeded = results.n_results
    failed = sum(len(row.failed) for row in results.rows)
    planned = sum(len(row.planned) for row in results.rows)
    counts = f"runs: {succeeded} succeeded, {failed} failed, {planned - succeeded - failed} not run"
    note = _note(sweep, counts, best, spec.metric, to_markdown(table), to_markdown(runs))
    artifacts: list[str] = []
    with tempfile.TemporaryDirectory(prefix="ablate-summary-") as tmp:
        folder = Path(tmp) / REPORT_DIR
        with warnings.catch_warnings():  # matplotlib on a cramped figure: not the sweep's news
            warnings.simplefilter("ignore", UserWarning)
            files = write_report(spec, table, formats=("md", "html"), out_dir=folder)
        (folder / "runs.md").write_text(to_markdown(runs), encoding="utf-8")
        uploads = [(path, REPORT_DIR) for path in [*files, folder / "runs.md"]]
        (Path(tmp) / "summary.md").write_text(note, encoding="utf-8")
        uploads.append((Path(tmp) / "summary.md", None))
        if Path(sweep.path).is_file():
            uploads.append((Path(sweep.path), "sweep"))
        for path, artifact_dir in uploads:
            client.log_artifact(parent, path, artifact_path=artifact_dir)
            artifacts.append(f"{artifact_dir}/{path.name}" if artifact_dir else path.name)
    now = int(time.time() * 1000)
    metrics = [
        ("runs/succeeded", float(succeeded), now, 0),
        ("runs/failed", float(failed), now, 0),
        ("runs/not_run", float(planned - succeeded - failed), now, 0),
    ]
    tags = {NOTE_TAG: note[:MAX_RUN_NOTE]}
    if best is not None:
        metrics.append((f"best/{spec.metric}", best.value, now, 0))
        tags["ablate.best.row"] = best.row
        tags["ablate.best.run_id"] = best.run_id
        if best.seed is not None:
            tags["ablate.best.seed"] = str(best.seed)
        if best.child:
            tags["ablate.best.mlflow_run"] = best.child
    client.log_batch(parent, metrics=metrics, tags=tags)
    return SweepSummary(spec.metric, planned, succeeded, failed, best, note, artifacts)


def _child_runs(results: SweepResults, layout: RunsLayout, uri: str) -> dict[str, str]:
    """Run id -> its MLflow child run (each run folder's ``mlflow.json`` for the public ``uri``)."""
    children = {}
    for row in results.rows:
        for run_id in row.planned:
            link = read_tracking_link(layout.run_dir(results.sweep.name, run_id)) or {}
            child = str(link.get("run_id") or "")
            if link.get("tracking_uri") == uri and child and not is_local_ref(child):
                children[run_id] = child
    return children


def _runs_table(
    metric: str, results: SweepResults, children: dict[str, str], experiment_id: str
) -> tuple[Table, BestRun | None]:
    """One line per planned run (row, seed, status, metric, link to its child) and the best."""
    from ablate.report.tables import Table, fmt

    seeds = {run.spec.run_id: run.spec.seed for run in results.sweep.runs}
    rows: list[list[str]] = []
    best: BestRun | None = None
    linkable = not is_local_ref(experiment_id)
    for row in results.rows:
        found = {r.run_id: r for r in row.results}
        for run_id in row.planned:
            result = found.get(run_id)
            value = result.metrics.get(metric) if result is not None else None
            status = "success" if result else "failed" if run_id in row.failed else "not run"
            child = children.get(run_id)
            link = f"[{run_id}]({run_path(experiment_id, child)})" if child and linkable else run_id
            rows.append([row.key, str(seeds.get(run_id, "")), status, fmt(value), link])
            if value is not None and (best is None or value > best.value):
                best = BestRun(row.key, seeds.get(run_id), run_id, float(value), child)
    table = Table(
        name="runs",
        title=f"Runs of sweep {results.sweep.name} (links open each child run)",
        header=["row", "seed", "status", metric, "run (MLflow)"],
        rows=rows,
        numeric_columns={1, 3},
    )
    return table, best


def _note(
    sweep: Sweep, counts: str, best: BestRun | None, metric: str, report: str, runs: str
) -> str:
    """The parent's description; the runs table is cut (never the report) to fit a run tag."""
    head = [f"**Sweep `{sweep.name}`**" + (f" (scale `{sweep.scale}`)" if sweep.scale else "")]
    head += ["", counts]
    if best is not None:
        seed = "" if best.seed is None else f", seed {best.seed}"
        head.append(f"best {metric}: {best.value:.2f} ({best.row}{seed}, run {best.run_id})")
    text = "\n".join(head) + "\n\n" + report
    if len(text) + len(runs) + 2 <= MAX_RUN_NOTE:
        return text + "\n" + runs
    more = f"\n(the full list of runs: artifact `{REPORT_DIR}/runs.md`)\n"
    if len(text) + len(more) > MAX_RUN_NOTE:
        return "\n".join(head) + f"\n\n(the table: artifact `{REPORT_DIR}/`)\n"
    lines = runs.splitlines()
    kept: list[str] = []
    for line in lines:
        if len(text) + len("\n".join([*kept, line])) + len(more) + 2 > MAX_RUN_NOTE:
            break
        kept.append(line)
    return text + "\n" + "\n".join(kept) + more
