"""``ablate report``: resolve what to report, build its table, write every requested output.

A target is a report spec (``reports/table3.yaml``), a sweep (``sweeps/table3.yaml``: the spec its
``report: {spec: PATH}`` names, else the report spec naming it in ``reports/``, else a plain table
of its rows), a bare name
(``table3``: ``reports/table3.yaml``, then ``sweeps/table3.yaml``), or nothing (every spec in
``reports/``). Reading goes through the results store only: no MLflow, no torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablate.report.collect import collect_sweep
from ablate.report.render import (
    DEFAULT_OUT_DIR,
    DEFAULT_REPORTS_DIR,
    EXTENSIONS,
    FORMATS,
    latex_document,
    render,
)
from ablate.report.spec import PlotSpec, ReportSpec, find_report_spec, load_report_spec
from ablate.report.speed import DEFAULT_SPEED
from ablate.report.tables import Table, build_table
from ablate.spec.yaml_source import load_yaml


@dataclass(frozen=True)
class ReportOutput:
    """What one report produced."""

    spec: ReportSpec
    table: Table
    files: tuple[Path, ...]

    @property
    def has_results(self) -> bool:
        """Whether any row holds a run of ours (else nothing was written: no empty plot)."""
        return any(r["source"] == "ours" and r.get("n") for r in self.table.records)


def resolve_targets(target: str | Path | None, reports_dir: Path) -> list[ReportSpec]:
    """The report specs a command-line target names (see the module docstring).

    Raises:
        FileNotFoundError: nothing matches; the message says where it looked.
    """
    if target is None:
        specs = sorted(Path(reports_dir).glob("*.yaml"))
        if not specs:
            raise FileNotFoundError(f"no report specs (*.yaml) in {reports_dir}")
        return [load_report_spec(p) for p in specs]
    path = Path(target)
    if not path.exists() and path.suffix == "":
        for candidate in (Path(reports_dir) / f"{path}.yaml", Path("sweeps") / f"{path}.yaml"):
            if candidate.is_file():
                path = candidate
                break
    if not path.is_file():
        from ablate.spec.sweep_target import nearest_sweep

        nearest = nearest_sweep(path)
        raise FileNotFoundError(
            f"{target}: not a report spec or sweep file (also looked for "
            f"{Path(reports_dir) / f'{target}.yaml'} and sweeps/{target}.yaml)"
            + (f" (did you mean {nearest}?)" if nearest else "")
        )
    data = load_yaml(path).data
    if isinstance(data, dict) and "layout" in data:
        return [load_report_spec(path)]
    named = (data.get("report") or {}) if isinstance(data, dict) else {}
    if isinstance(named, dict) and isinstance(named.get("spec"), str):
        return [load_report_spec(path.parent / named["spec"])]  # the sweep's `report: {spec:}`
    found = find_report_spec(path, reports_dir)
    if found is None:
        found = find_report_spec(path, path.resolve().parent.parent / "reports")
    if found is not None:
        return [load_report_spec(found)]
    return [plain_spec(path)]


def plain_spec(sweep_path: Path) -> ReportSpec:
    """A rows table of a sweep no report spec describes: its rows, overall accuracy, no paper."""
    sweep_path = Path(sweep_path)
    return ReportSpec(
        name=sweep_path.stem,
        path=sweep_path,
        sweep=sweep_path.name,
        layout="rows",
        title=f"{sweep_path.stem}: test accuracy",
        plot=PlotSpec(kind="bars"),
    )


def build_report(
    spec: ReportSpec,
    *,
    runs_root: Path | str,
    scale: str | None = None,
    speed: bool = False,
    overrides: Mapping[str, Any] | None = None,
) -> Table:
    """Collect the spec's sweep from the results store and build its table.

    Args:
        spec: the report spec.
        runs_root: the runs root holding the results store.
        scale: report this scale's runs only (default: the variant with the most results).
        speed: add the default throughput and cost columns when the spec names none.
        overrides: ``--set`` values for the sweep, applied as in ``ablate sweep``.
    """
    if speed and not spec.speed:
        spec = spec.model_copy(update={"speed": DEFAULT_SPEED})
    results = collect_sweep(spec.sweep_path, runs_root, scale=scale, overrides=overrides)
    return build_table(spec, results)


def write_report(
    spec: ReportSpec,
    table: Table,
    *,
    formats: tuple[str, ...],
    out_dir: Path,
    plots: bool = True,
) -> list[Path]:
    """Write the table in each format (LaTeX also as a standalone document) and its figures."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    for fmt in formats:
        path = out_dir / f"{table.name}.{EXTENSIONS[fmt]}"
        text = render(table, fmt)
        path.write_text(text, encoding="utf-8")
        files.append(path)
        if fmt == "latex":
            standalone = out_dir / f"{table.name}_standalone.tex"
            standalone.write_text(latex_document(text), encoding="utf-8")
            files.append(standalone)
    if plots and spec.plot.kind != "none":
        from ablate.report.plots import plot_table

        files += plot_table(spec, table, out_dir)
    return files


def render_report(
    target: str | Path | None = None,
    *,
    runs_root: Path | str = "runs",
    fmt: str | tuple[str, ...] = "md",
    out_dir: Path | str = DEFAULT_OUT_DIR,
    reports_dir: Path | str = DEFAULT_REPORTS_DIR,
    scale: str | None = None,
    plots: bool = True,
    speed: bool = False,
    overrides: Mapping[str, Any] | None = None,
) -> list[ReportOutput]:
    """Render the reports a target names into ``out_dir``.

    Args:
        target: report spec, sweep file, bare name, or ``None`` for every spec in ``reports_dir``.
        runs_root: the runs root holding the results store.
        fmt: one format or several (``md``, ``latex``, ``csv``, ``html``; ``all`` for every one).
        out_dir: where outputs go (``reports/out`` by default).
        reports_dir: where report specs are looked up.
        scale: report this scale's runs only (default: the variant with the most results).
        plots: also draw the spec's figure (PNG and SVG).
        speed: add GPU-hours, samples/s and MFU columns to tables whose spec names none.
        overrides: ``--set`` values for the sweeps, applied as in ``ablate sweep``.

    Raises:
        ValueError: unknown format.
        FileNotFoundError: the target names nothing.
        ablate.errors.SpecError: a malformed report spec or sweep.
    """
    formats = _formats(fmt)
    outputs = []
    for spec in resolve_targets(target, Path(reports_dir)):
        table = build_report(
            spec, runs_root=runs_root, scale=scale, speed=speed, overrides=overrides
        )
        output = ReportOutput(spec, table, ())
        if output.has_results:  # a sweep nobody ran gets a message, not empty tables and plots
            files = write_report(spec, table, formats=formats, out_dir=Path(out_dir), plots=plots)
            output = ReportOutput(spec, table, tuple(files))
        outputs.append(output)
    return outputs


def _formats(fmt: str | tuple[str, ...]) -> tuple[str, ...]:
    requested = (fmt,) if isinstance(fmt, str) else tuple(fmt)
    if "all" in requested:
        return FORMATS
    for name in requested:
        if name not in FORMATS:
            raise ValueError(f"unknown report format {name!r}; allowed: {', '.join(FORMATS)}, all")
    return requested
