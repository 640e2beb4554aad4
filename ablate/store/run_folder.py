"""Every file of a run folder ``<runs root>/<sweep>/<run_id>/``: its name, how it is read, written.

The orchestrator, the workers, the SLURM task, the tracker and the tuner all meet in a run folder,
often from different processes and hosts. Naming each file once here, and writing each with
:func:`~ablate.store.files.write_atomic`, keeps them agreeing on what is there::

    spec.json        what to run (the validated run spec)            written before dispatch
    run.json         which sweep dispatched it, and its axis values   written before dispatch
    metrics.jsonl    one line per logged step, appended by the job     read while it grows
    progress.json    how far the job is, for the live display          rewritten twice a second
    worker.log       the worker's stdout and stderr
    .stop-reason     why the orchestrator stopped the job (``timeout``, ...)
    checkpoint.pt    resumable trainable state, with checkpoint.json (its hash)
    mlflow.json      which MLflow run this run folder logs to
    .mlflow-sync.json  what of this folder MLflow already has (see ``ablate.tracking.run_sync``)

The attempt records themselves live in the results store (``runs/.store/records``), not here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ablate.store.files import write_atomic, write_atomic_in_order

if TYPE_CHECKING:
    from ablate.spec.sweep import PlannedRun

SPEC_FILE = "spec.json"
RUN_META_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"
LOG_FILE = "worker.log"
PROGRESS_FILE = "progress.json"
STOP_REASON_FILE = ".stop-reason"  # written by the orchestrator before it stops a job
CHECKPOINT_FILE = "checkpoint.pt"
CHECKPOINT_MANIFEST_FILE = "checkpoint.json"
TRACKING_LINK_FILE = "mlflow.json"
TRACKING_CURSOR_FILE = ".mlflow-sync.json"
TRACKING_LOCK_FILE = ".mlflow-sync.lock"

MetricLine = tuple[int, int, dict[str, float]]  # (step, timestamp_ms, finite numeric metrics)


# ----------------------------------------------------------------------- spec.json, run.json
def write_run_files(run_dir: Path, spec_json: str, *, sweep: str, axes: dict[str, Any]) -> None:
    """Write ``spec.json`` (what to run) and ``run.json`` (sweep and axes) into a run folder.

    Not fsynced: they are rewritten before every dispatch (a lost write is written again), and
    dispatch latency matters more.
    """
    spec_text = spec_json + ("" if spec_json.endswith("\n") else "\n")
    write_atomic(run_dir / SPEC_FILE, spec_text, fsync=False)
    meta = json.dumps({"sweep": sweep, "axes": axes}, indent=2, sort_keys=True, default=str)
    write_atomic(run_dir / RUN_META_FILE, meta, fsync=False)


def read_run_meta(run_dir: Path) -> dict[str, Any]:
    """The sweep and axes of a run folder (defaults: folder's parent name, no axes)."""
    meta: dict[str, Any] = {"sweep": Path(run_dir).resolve().parent.name, "axes": {}}
    with contextlib.suppress(OSError, ValueError):
        meta.update(json.loads((Path(run_dir) / RUN_META_FILE).read_text(encoding="utf-8")))
    return meta


def planned_run_of(run_dir: Path) -> PlannedRun:
    """The run a folder holds, as the planner would have produced it (spec and axes, no label).

    For whoever records or reports an attempt without the sweep's plan at hand: the SLURM task,
    ``ablate status``, the tracking sync.

    Raises:
        SpecError: ``spec.json`` is missing or invalid.
    """
    from ablate.spec.run_spec import load_run_spec
    from ablate.spec.sweep import PlannedRun

    meta = read_run_meta(run_dir)
    spec = load_run_spec(Path(run_dir) / SPEC_FILE)
    return PlannedRun(spec=spec, axes=dict(meta.get("axes") or {}))


# ------------------------------------------------------------------- progress, stop reason
def write_progress(run_dir: Path, payload: dict[str, Any]) -> None:
    """Replace ``progress.json`` (not fsynced: it is rewritten often and only shown live)."""
    write_atomic(Path(run_dir) / PROGRESS_FILE, json.dumps(payload), fsync=False)


def read_progress(run_dir: Path) -> dict[str, Any] | None:
    """The job's last ``progress.json`` (``None``: none yet, or unreadable)."""
    try:
        payload = json.loads((Path(run_dir) / PROGRESS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return payload if isinstance(payload, dict) else None


def write_stop_reason(run_dir: Path, reason: str) -> None:
    """Tell the job why it is being stopped (read when it ends: a timeout is a failure)."""
    write_atomic(Path(run_dir) / STOP_REASON_FILE, reason)


def read_stop_reason(run_dir: Path) -> str:
    """Why the orchestrator stopped the job (``""`` if it did not)."""
    try:
        return (Path(run_dir) / STOP_REASON_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        return ""


# --------------------------------------------------------------------------- mlflow.json
def read_tracking_link(run_dir: Path) -> dict[str, Any] | None:
    """``{"tracking_uri", "experiment_id", "run_id"}`` of the MLflow run this folder logs to."""
    try:
        link = json.loads((Path(run_dir) / TRACKING_LINK_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return link if isinstance(link, dict) else None


def write_tracking_link(run_dir: Path, tracking_uri: str, experiment_id: str, run_id: str) -> None:
    """Remember which MLflow run this folder logs to (a retry continues the same run).

    Not fsynced: rewritten at every attempt's start; without it the tracker finds the run again
    by its ``ablate.run_id`` tag.
    """
    payload = {"tracking_uri": tracking_uri, "experiment_id": experiment_id, "run_id": run_id}
    write_atomic(Path(run_dir) / TRACKING_LINK_FILE, json.dumps(payload, indent=1), fsync=False)


# ------------------------------------------------------------------------- metrics.jsonl
class MetricsLog:
    """Appends the job's per-step metrics to ``metrics.jsonl``, one JSON object a line.

    The file is the only route of step metrics out of a job: the tuner's pruning and the tracking
    sync read it while it grows (line-buffered, so a reader sees whole lines as soon as written).
    """

    def __init__(self, path: Path) -> None:
        self._path = Path(path)
        self._file: IO[str] | None = None

    def __call__(self, step: int, metrics: dict[str, float]) -> None:
        """Append one step's metrics (with the wall-clock time)."""
        if self._file is None:
            self._file = self._path.open("a", encoding="utf-8", buffering=1)
        self._file.write(json.dumps({"step": step, "time": time.time(), **metrics}) + "\n")

    def close(self) -> None:
        """Close the file, if it was opened."""
        if self._file is not None:
            self._file.close()
            self._file = None


def parse_metric_line(line: str | bytes) -> MetricLine | None:
    """One line :class:`MetricsLog` wrote (``None``: cut by a crash, or not a metrics object).

    Non-numbers and non-finite values are left out of the metrics.
    """
    try:
        obj = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(obj, dict):
        return None
    step = int(obj.pop("step", 0))
    stamp = int(float(obj.pop("time", 0.0)) * 1000)
    values = {
        k: float(v)
        for k, v in obj.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(float(v))
    }
    return step, stamp, values


def parse_metric_lines(text: str) -> list[MetricLine]:
    """Every line of ``text`` that :func:`parse_metric_line` accepts, in order."""
    return [m for line in text.splitlines() if (m := parse_metric_line(line)) is not None]


def read_metric_lines_from(
    path: Path, offset: int, end: int | None = None
) -> list[tuple[MetricLine, int]]:
    """Complete lines of a growing ``metrics.jsonl`` from byte ``offset``, each with its end byte.

    A line still being written (no newline yet) is left for the next read. The end bytes let a
    reader that forwards lines in chunks remember exactly how far it got.

    Args:
        path: the metrics file.
        offset: where the last read stopped.
        end: read no further than this byte (``None``: to the end of the file).
    """
    try:
        with Path(path).open("rb") as fh:
            fh.seek(offset)
            data = fh.read() if end is None else fh.read(max(0, end - offset))
    except OSError:
        return []
    out = []
    position = offset
    for raw in data.splitlines(keepends=True):
        if not raw.endswith(b"\n"):
            break
        position += len(raw)
        parsed = parse_metric_line(raw)
        if parsed is not None:
            out.append((parsed, position))
    return out


def read_new_metric_lines(path: Path, offset: int) -> tuple[list[MetricLine], int]:
    """Complete lines of a growing ``metrics.jsonl`` after byte ``offset``, and the new offset.

    A line still being written is left for the next read (reader: the tuner's pruning).
    """
    try:
        with Path(path).open("rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except OSError:
        return [], offset
    cut = data.rfind(b"\n") + 1
    return parse_metric_lines(data[:cut].decode("utf-8", errors="replace")), offset + cut


def metrics_size(run_dir: Path) -> int:
    """The byte size of ``metrics.jsonl`` (0 if absent): where the next attempt's lines begin."""
    try:
        return (Path(run_dir) / METRICS_FILE).stat().st_size
    except OSError:
        return 0


# --------------------------------------------------------------------------- checkpoints
class CheckpointInvalid(ValueError):
    """A checkpoint that must not be resumed from (unreadable, partly written or corrupt)."""


def write_checkpoint_bytes(run_dir: Path, data: bytes, **manifest: Any) -> Path:
    """Write a checkpoint and its manifest (SHA-256, size and ``manifest``), each atomically.

    Both are written in full first, then renamed into place back to back, checkpoint first: a crash
    in between (microseconds) leaves a checkpoint whose hash does not match the manifest, which
    :func:`read_checkpoint_bytes` refuses.

    Returns:
        The checkpoint path.
    """
    run_dir = Path(run_dir)
    entry = {**manifest, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    path = run_dir / CHECKPOINT_FILE
    write_atomic_in_order(
        [(path, data), (run_dir / CHECKPOINT_MANIFEST_FILE, json.dumps(entry, indent=1))]
    )
    return path


def read_checkpoint_bytes(run_dir: Path) -> tuple[bytes, dict[str, Any]] | None:
    """The verified checkpoint bytes and manifest of a run folder (``None``: no checkpoint).

    Raises:
        CheckpointInvalid: the pair is incomplete, unreadable, or the bytes do not match the
            manifest's SHA-256 (the message says which).
    """
    run_dir = Path(run_dir)
    path, manifest_path = run_dir / CHECKPOINT_FILE, run_dir / CHECKPOINT_MANIFEST_FILE
    if not path.exists() and not manifest_path.exists():
        return None
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        data = path.read_bytes()
    except (OSError, ValueError) as exc:
        raise CheckpointInvalid(f"unreadable ({exc})") from None
    digest = hashlib.sha256(data).hexdigest()
    if not isinstance(manifest, dict) or digest != manifest.get("sha256"):
        expected = manifest.get("sha256") if isinstance(manifest, dict) else None
        raise CheckpointInvalid(
            f"SHA-256 {digest[:12]} does not match the manifest's {str(expected)[:12]} "
            "(corrupt or partly written)"
        )
    return data, manifest
