"""GPU-hour estimates calibrated by what earlier runs of the same model measured on the same GPU.

The FLOP model of :mod:`ablate.train.cost` assumes one H100 at 35% MFU. Once the store holds
successful ``mmt`` runs of the same model shape (LLM and vision presets, precision, quantisation:
a tiny twin is another shape) on one GPU type, each gives a ratio ``measured / FLOP model`` (the
measured hours are :func:`~ablate.train.cost.measured_hours`; the record's own spec is priced by
the same FLOP model, so epochs and split sizes cancel out). ``ablate plan`` multiplies the FLOP
estimate by the median ratio of the latest matching runs (:data:`LATEST_RUNS`) and says so; a
shape without such runs keeps the FLOP model.

Which GPU: the one named with ``ablate plan --gpu`` (a substring of the recorded device name,
``H100``), else the device most matching runs ran on. Cheap when there is nothing to learn from:
the plain-text summary index is read first, and pyarrow (never pandas) only when it lists a
success; a priced record's spec is validated and its model built on the meta device (cached by
model and adapter), its run folder never read.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from ablate.spec.dotted import get_dotted
from ablate.train.cost import ASSUMED_GPU, ASSUMED_MFU, estimate_gpu_hours, measured_hours

SHAPE_KEYS = ("model.llm", "model.vision", "model.precision", "model.quantization")
"""What makes two runs the same model shape for calibration (adapters are a few percent)."""
LATEST_RUNS = 20
"""Runs priced per model shape and device: the most recent ones."""
INDEX_COLUMNS = ["valid", "status", "job", "device", "metrics", "spec", "started_at", "ended_at"]


def flop_model_hours(cfg: Any) -> float:
    """The FLOP model's GPU-hours of one ``mmt`` config (meta-device parameter counts)."""
    from ablate.model.sizing import parameter_counts

    return estimate_gpu_hours(cfg, parameter_counts(cfg.model, cfg.adapter))


def shape_key(spec: dict[str, Any]) -> tuple[str, ...]:
    """The model shape of a nested run spec: :data:`SHAPE_KEYS` values, as text."""
    return tuple(str(get_dotted(spec, key, "")) for key in SHAPE_KEYS)


@dataclass(frozen=True)
class Calibration:
    """The measured / FLOP-model ratio of one model shape on one device.

    Attributes:
        shape: the :func:`shape_key`.
        device: the recorded device name (``NVIDIA H100 80GB HBM3``).
        ratios: one ratio per successful run.
    """

    shape: tuple[str, ...]
    device: str
    ratios: tuple[float, ...]

    @property
    def factor(self) -> float:
        """The median ratio (one slow or fast run does not move it)."""
        return statistics.median(self.ratios)

    def describe(self) -> str:
        """One line for the plan: how many runs, where, which shape, the factor."""
        llm, vision, precision, quantization = self.shape
        return (
            f"gpu_h of {llm} + {vision} ({precision}, quantisation {quantization}) calibrated "
            f"from {len(self.ratios)} run(s) on {self.device}: measured / FLOP model, "
            f"median x{self.factor:.2f}"
        )


@dataclass
class GpuHourCalibration:
    """The calibrations a store offers, by model shape and device; the store is read on first use.

    Attributes:
        runs_root: the runs root holding the results store (``None``: no store, the FLOP model).
        gpu: the device-name substring asked for (``None``: the device with most runs).
        used: the calibrations :meth:`estimate` applied, for the plan's notes.
    """

    runs_root: Path | None = None
    gpu: str | None = None
    used: dict[tuple[tuple[str, ...], str], Calibration] = field(default_factory=dict)

    @cached_property
    def found(self) -> dict[tuple[tuple[str, ...], str], list[float]]:
        """(shape, device) -> ratios of the latest successful runs (:func:`read_ratios`)."""
        return {} if self.runs_root is None else read_ratios(self.runs_root)

    def for_shape(self, shape: tuple[str, ...]) -> Calibration | None:
        """The calibration of a model shape on the chosen device, or ``None``."""
        wanted = (self.gpu or "").lower()
        candidates = [
            (len(ratios), device, ratios)
            for (key, device), ratios in self.found.items()
            if key == shape and wanted in device.lower()
        ]
        if not candidates:
            return None
        _, device, ratios = max(candidates, key=lambda c: (c[0], c[1]))
        return Calibration(shape, device, tuple(ratios))

    def estimate(self, spec: Any) -> tuple[float, Calibration | None] | None:
        """GPU-hours of a planned ``mmt`` run and the calibration used (``None``: FLOP model).

        Returns ``None`` for a job without a FLOP model.
        """
        if spec.job != "mmt":
            return None
        hours = flop_model_hours(spec.config)
        calibration = self.for_shape(shape_key(spec.to_dict()))
        if calibration is None:
            return hours, None
        self.used[(calibration.shape, calibration.device)] = calibration
        return hours * calibration.factor, calibration

    def summary(self, hours: list[float], calibrated: int) -> list[str]:
        """The plan's closing lines: each calibration used, then the sweep's total.

        Args:
            hours: the GPU-hours of every priced run.
            calibrated: how many of them were calibrated.
        """
        lines = [calibration.describe() for calibration in self.used.values()]
        if self.gpu and calibrated < len(hours):
            lines.append(
                f"{len(hours) - calibrated} run(s) have no earlier run of their model on a device "
                f"matching {self.gpu!r} in the store: FLOP model"
            )
        devices = ", ".join(sorted({c.device for c in self.used.values()}))
        flop_model = f"one {ASSUMED_GPU} at {ASSUMED_MFU:.0%} MFU, FLOP model"
        if not calibrated:
            source = flop_model
        elif calibrated == len(hours):
            source = f"calibrated from earlier runs on {devices}"
        else:
            source = (
                f"{calibrated} calibrated from earlier runs on {devices}, "
                f"{len(hours) - calibrated} from the FLOP model ({flop_model})"
            )
        lines.append(
            f"estimated GPU-hours: {sum(hours):.1f} for {len(hours)} runs "
            f"(median {statistics.median(hours):.2f} a run; {source})"
        )
        return lines


def load_calibration(runs_root: Path | str, gpu: str | None = None) -> GpuHourCalibration:
    """The calibration of a store, read when a planned run first asks for it.

    Args:
        runs_root: the runs root holding the results store.
        gpu: calibrate from this GPU type only (a substring of the recorded device name).
    """
    return GpuHourCalibration(Path(runs_root), gpu)


def read_ratios(runs_root: Path | str) -> dict[tuple[tuple[str, ...], str], list[float]]:
    """The ratios of the latest successful ``mmt`` runs in the store, by shape and device.

    Only the :data:`LATEST_RUNS` most recent runs of each model shape and device are priced: they
    measured the code as it is now, and pricing a record builds its model on the meta device.
    """
    from ablate.store.results_store import ResultsStore

    store = ResultsStore(runs_root)
    if "success" not in store.attempt_columns()["status"]:
        return {}  # the summary index: nothing measured, no pyarrow
    import pyarrow.compute as pc

    table = store.index_table(INDEX_COLUMNS)
    wanted = pc.and_(pc.equal(table["status"], "success"), pc.equal(table["job"], "mmt"))
    table = table.filter(pc.and_(table["valid"], wanted))  # other jobs stay in arrow
    groups: dict[tuple[tuple[str, ...], str], list[dict[str, Any]]] = {}
    for row in table.to_pylist():
        if row["device"]:
            spec = json.loads(row["spec"] or "{}")
            key = (shape_key(spec), str(row["device"]))
            groups.setdefault(key, []).append({**row, "spec": spec})
    found = {}
    for key, rows in groups.items():
        rows.sort(key=lambda r: r["ended_at"] or 0.0, reverse=True)
        ratios = [r for r in map(_ratio, rows[:LATEST_RUNS]) if r is not None]
        if ratios:
            found[key] = ratios
    return found


def _ratio(row: dict[str, Any]) -> float | None:
    """The measured / FLOP-model ratio of one success record; ``None`` if it cannot be priced."""
    from ablate.errors import SpecError
    from ablate.spec.run_spec import build_run_spec

    ended, started = row["ended_at"], row["started_at"]
    duration = ended - started if ended is not None and started is not None else None
    hours = measured_hours(json.loads(row["metrics"] or "{}"), duration)
    if hours is None:
        return None
    try:
        cfg = build_run_spec(row["spec"]).config
    except (SpecError, ValueError, TypeError):
        return None  # a spec an older ablate wrote that no longer validates: not priced
    estimate = flop_model_hours(cfg)
    return hours / estimate if estimate > 0 else None
