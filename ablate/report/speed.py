"""The optional throughput and cost columns of a report: what each row's runs cost and ran at.

A researcher picks the next ablation by what a row bought per GPU-hour, so a table can show,
beside accuracy, the measured GPU-hours of a row's runs and their training throughput. The
columns are named in the report spec (``speed: [gpu_h, samples_per_s, mfu]``) or added to any
table with ``ablate report --speed`` (:data:`DEFAULT_SPEED`); each cell is the mean over the
row's runs that recorded it, a dash where none did. Every figure is read from the record: the
``speed/*`` metrics of training (:mod:`ablate.train.throughput`) and the hours of
:func:`ablate.train.cost.measured_hours` (torch-free).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ablate.train.cost import measured_hours

if TYPE_CHECKING:
    from ablate.report.collect import RowRuns, RunResult


@dataclass(frozen=True)
class SpeedColumn:
    """One optional column: its header, how a run's value is read, and its decimals."""

    header: str
    value: Callable[[RunResult], float | None]
    digits: int


def _metric(name: str, scale: float = 1.0) -> Callable[[RunResult], float | None]:
    def read(result: RunResult) -> float | None:
        value = result.metrics.get(name)
        return None if value is None else float(value) * scale

    return read


def _hours(result: RunResult) -> float | None:
    return measured_hours(result.metrics, result.duration_s)


SPEED_COLUMNS: dict[str, SpeedColumn] = {
    "gpu_h": SpeedColumn("GPU-h", _hours, 2),
    "samples_per_s": SpeedColumn("samples/s", _metric("speed/samples_per_s"), 1),
    "tokens_per_s": SpeedColumn("tokens/s", _metric("speed/tokens_per_s"), 0),
    "mfu": SpeedColumn("MFU %", _metric("speed/mfu", 100.0), 1),
    "peak_gib": SpeedColumn("peak GiB", _metric("speed/peak_gpu_memory_gib"), 1),
}
"""Column name (as written in a report spec) -> column."""
DEFAULT_SPEED = ("gpu_h", "samples_per_s", "mfu")
"""The columns ``ablate report --speed`` adds to a table whose spec names none."""


def _values(row: RowRuns, name: str) -> list[float]:
    read = SPEED_COLUMNS[name].value
    return [v for v in map(read, row.results) if v is not None]


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def speed_headers(names: tuple[str, ...]) -> list[str]:
    """The headers of the named columns."""
    return [SPEED_COLUMNS[name].header for name in names]


def speed_cells(row: RowRuns, names: tuple[str, ...], dash: str) -> list[str]:
    """A row's cells: the mean over its runs, ``dash`` where none recorded the figure."""
    cells = []
    for name in names:
        mean = _mean(_values(row, name))
        cells.append(dash if mean is None else f"{mean:,.{SPEED_COLUMNS[name].digits}f}")
    return cells


def speed_record(row: RowRuns, names: tuple[str, ...]) -> dict[str, Any]:
    """The same means as numbers, keyed by column name (for CSV)."""
    return {name: _mean(_values(row, name)) for name in names}


def speed_notes(rows: list[RowRuns], names: tuple[str, ...]) -> list[str]:
    """The note under the table: what the columns are, the measured GPU-hours in all."""
    if not names:
        return []
    parts = []
    if "gpu_h" in names:
        hours = [v for row in rows for v in _values(row, "gpu_h")]
        parts.append(
            "GPU-h: hours a run held its device, training (per-epoch validation included) plus "
            "the final evaluation, model loading excluded (a job without these times: its "
            f"attempt's wall time); {sum(hours):.2f} GPU-hours over {len(hours)} runs in all"
        )
    others = [SPEED_COLUMNS[name].header for name in names if name != "gpu_h"]
    if others:
        parts.append(
            f"{', '.join(others)}: training alone (speed/* metrics; MFU against the GPU's dense "
            "16-bit peak, frozen-backbone FLOPs)"
        )
    return ["; ".join(parts) + ". Each cell: mean over the row's runs that recorded it."]
