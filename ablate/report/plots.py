"""Figures beside the tables: Table 2 as a heatmap, Table 3 as bars with intervals.

Drawn with matplotlib's non-interactive Agg backend (no display needed) from a table's numeric
records, and saved as PNG and SVG. A figure holding tiny-twin or synthetic-data results carries
the same label as the table, in red, so a screenshot cannot pass for a reproduction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ablate.report.spec import ReportSpec
from ablate.report.tables import TINY_LABEL, Table

PLOT_FORMATS = ("png", "svg")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams["svg.fonttype"] = "none"  # keep SVG text as text (searchable, smaller)
    plt.rcParams["svg.hashsalt"] = "ablate"  # stable element ids

    return plt


def _ours(table: Table, metric: str) -> list[dict[str, Any]]:
    return [r for r in table.records if r["source"] == "ours" and r["metric"] == metric]


def plot_heatmap(spec: ReportSpec, table: Table, out_dir: Path) -> list[Path]:
    """Mean accuracy over ``plot.x`` x ``plot.y`` axis values; the paper's value under each cell."""
    plt = _pyplot()
    import numpy as np

    x_key, y_key = f"axes.{spec.plot.x}", f"axes.{spec.plot.y}"
    records = [r for r in _ours(table, spec.metric) if x_key in r and y_key in r]
    xs = sorted({r[x_key] for r in records}, key=_sort_key)
    ys = sorted({r[y_key] for r in records}, key=_sort_key)
    grid = np.full((len(ys), len(xs)), np.nan)  # (Y, X)
    for r in records:
        if r["mean"] is not None:
            grid[ys.index(r[y_key]), xs.index(r[x_key])] = r["mean"]
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * max(len(xs), 1), 1.2 + 0.8 * max(len(ys), 1)))
    image = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", aspect="auto")
    fig.colorbar(image, ax=ax, label=spec.metric)
    ax.set_xticks(range(len(xs)), [str(x) for x in xs])
    ax.set_yticks(range(len(ys)), [str(y) for y in ys])
    ax.set_xlabel(spec.plot.x or "")
    ax.set_ylabel(spec.plot.y or "")
    low, high = np.nanmin(grid) if np.isfinite(grid).any() else 0.0, np.nanmax(grid)
    for r in records:
        i, j = ys.index(r[y_key]), xs.index(r[x_key])
        ours = "no result" if r["mean"] is None else f"{r['mean']:.2f}"
        paper = "" if r["paper"] is None else f"\npaper {r['paper']:.2f}"
        bright = r["mean"] is not None and high > low and (r["mean"] - low) / (high - low) > 0.6
        color = "black" if bright or r["mean"] is None else "white"
        ax.text(j, i, ours + paper, ha="center", va="center", color=color, fontsize=8)
    _finish(ax, fig, table)
    return _save(fig, out_dir / f"{table.name}_heatmap", plt)


def plot_bars(spec: ReportSpec, table: Table, out_dir: Path) -> list[Path]:
    """One bar per row (mean, 95% CI as error bars), the paper's value as a black tick."""
    plt = _pyplot()
    records = _ours(table, spec.metric)
    names = [str(r["row"]) for r in records]
    means = [r["mean"] if r["mean"] is not None else 0.0 for r in records]
    low = [max(0.0, r["mean"] - r["ci_low"]) if r["ci_low"] is not None else 0.0 for r in records]
    high = [
        max(0.0, r["ci_high"] - r["mean"]) if r["ci_high"] is not None else 0.0 for r in records
    ]
    fig, ax = plt.subplots(figsize=(8, 0.45 * max(len(names), 1) + 1.6))
    positions = list(range(len(names)))
    ax.barh(positions, means, xerr=[low, high], color="#4c72b0", capsize=3, label="ours")
    papers = [
        (p, r["paper"]) for p, r in zip(positions, records, strict=False) if r["paper"] is not None
    ]
    if papers:
        ax.scatter(
            [v for _, v in papers],
            [p for p, _ in papers],
            marker="|",
            s=300,
            color="black",
            label="paper",
            zorder=3,
        )
    for position, r in zip(positions, records, strict=True):
        if r["mean"] is None:
            ax.text(0.5, position, "no result", va="center", fontsize=7, color="#555555")
    ax.set_yticks(positions, names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(spec.metric)
    ax.legend(loc="lower right", fontsize=7)
    _finish(ax, fig, table)
    return _save(fig, out_dir / f"{table.name}_bars", plt)


def _finish(ax: Any, fig: Any, table: Table) -> None:
    ax.set_title(table.title.replace(f" [{TINY_LABEL}]", ""), fontsize=9)
    if table.tiny:
        fig.text(
            0.5,
            0.005,
            TINY_LABEL,
            ha="center",
            va="bottom",
            color="#b00000",
            fontsize=9,
            fontweight="bold",
        )
    fig.tight_layout(rect=(0, 0.04 if table.tiny else 0, 1, 1))


def _save(fig: Any, stem: Path, plt: Any) -> list[Path]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in PLOT_FORMATS:
        path = stem.with_suffix(f".{ext}")
        # a fixed date keeps SVG output byte-stable between runs
        metadata = {"Date": None} if ext == "svg" else {"Software": "ablate report"}
        fig.savefig(path, dpi=150, metadata=metadata)
        paths.append(path)
    plt.close(fig)
    return paths


def _sort_key(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, (int, float)) else (1, str(value))


def plot_table(spec: ReportSpec, table: Table, out_dir: Path) -> list[Path]:
    """Draw the figure the spec asks for (none for ``kind: none``); returns the files written."""
    if spec.plot.kind == "heatmap":
        return plot_heatmap(spec, table, out_dir)
    if spec.plot.kind == "bars":
        return plot_bars(spec, table, out_dir)
    return []
