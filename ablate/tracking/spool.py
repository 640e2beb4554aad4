"""Tracking writes kept on disk while the tracking server is down, replayed by ``ablate sync``.

Each process that could not reach the server appends its writes, in order, to its own JSON-lines
file under ``<runs root>/.tracking-spool/`` (one file per process: no interleaving, no locks). A
line is one operation: ``create_run``, ``log_batch``, ``update_run``, ``set_terminated``,
``set_experiment_tag`` or ``log_artifact`` (the file is copied into the spool, so it survives the
run folder). Runs created
while the server was down get a local reference (``local:<hex>``) that later operations use;
:func:`replay` creates the real run first and maps the reference to its id (``refs.json``).

Replay is resumable: the number of lines already applied is kept beside each file
(``<file>.done``), so a replay cut short by another outage continues where it stopped and never
logs a metric twice. A fully replayed file is moved to ``replayed/``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablate.store.files import append_durable, write_atomic
from ablate.tracking.config import TRACKING_URI_ENV, public_uri, usable_uri

LOCAL_PREFIX = "local:"
REFS_FILE = "refs.json"
CREATE_OPS = ("create_experiment", "create_run")


def new_local_ref() -> str:
    """A placeholder run or experiment id for something created while the server was down."""
    return LOCAL_PREFIX + uuid.uuid4().hex


def is_local_ref(value: str | None) -> bool:
    """Whether an id is a placeholder that only a replay can resolve."""
    return bool(value) and str(value).startswith(LOCAL_PREFIX)


class Spool:
    """The append-only spool file of this process (created on first write).

    Args:
        directory: the spool folder (``<runs root>/.tracking-spool``).
        tracking_uri: the tracking URI the writes were meant for (replayed there by default;
            its password is masked in the file, so a replay takes the full URI from
            ``--tracking-uri`` or ``$MLFLOW_TRACKING_URI``).
    """

    def __init__(self, directory: Path | str, tracking_uri: str) -> None:
        self.directory = Path(directory)
        self.tracking_uri = public_uri(tracking_uri)  # written to the header: no password
        self._path: Path | None = None
        self.n_ops = 0

    @property
    def path(self) -> Path | None:
        """The spool file, once something was written."""
        return self._path

    def append(self, op: str, **fields: Any) -> None:
        """Append one operation (flushed and fsynced: a crash loses nothing already spooled)."""
        if self._path is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
            self._path = self.directory / f"{stamp}-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
            self._write({"op": "header", "tracking_uri": self.tracking_uri, "pid": os.getpid()})
        if op == "log_artifact":
            fields = dict(fields)
            fields["path"] = str(self._keep_copy(Path(fields["path"])))
        self._write({"op": op, "time": time.time(), **fields})
        self.n_ops += 1

    def _keep_copy(self, source: Path) -> Path:
        target = self.directory / "artifacts" / uuid.uuid4().hex[:12] / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        return target

    def _write(self, obj: dict[str, Any]) -> None:
        assert self._path is not None
        append_durable(self._path, json.dumps(obj, default=str) + "\n")


def pending_files(directory: Path | str) -> list[Path]:
    """Spool files not yet fully replayed, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.glob("*.jsonl") if p.is_file())


@dataclass
class ReplayResult:
    """What :func:`replay` did."""

    files: int = 0
    ops: int = 0
    runs_created: int = 0
    metrics: int = 0
    remaining_files: list[Path] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Whether every spooled write reached the server."""
        return not self.remaining_files


def _read_ops(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    header: dict[str, Any] = {}
    ops = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a crash mid-write: everything before it is intact
        if obj.get("op") == "header":
            header = obj
        else:
            ops.append(obj)
    return header, ops


def _done_count(path: Path) -> int:
    try:
        return int(path.with_suffix(".done").read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def _set_done(path: Path, count: int) -> None:
    write_atomic(path.with_suffix(".done"), str(count))


def load_refs(directory: Path) -> dict[str, str]:
    """Local reference -> real MLflow id, for everything a replay already created."""
    try:
        return json.loads((directory / REFS_FILE).read_text())
    except (OSError, ValueError):
        return {}


def save_refs(directory: Path, refs: dict[str, str]) -> None:
    """Persist the reference map atomically."""
    write_atomic(directory / REFS_FILE, json.dumps(refs, indent=1, sort_keys=True))


def replay(
    directory: Path | str,
    apply: Callable[[str, dict[str, Any], dict[str, str]], str | None],
    *,
    tracking_uri: str | None = None,
) -> ReplayResult:
    """Replay every pending spool file through ``apply``; stop a file at its first failure.

    Creations are replayed first (across all files, oldest first), so a worker's metrics for a run
    the orchestrator created offline find their run. ``apply(uri, op, refs)`` performs one
    operation against ``uri`` (``tracking_uri`` or the file's own) and returns the real id for a
    creation.
    """
    directory = Path(directory)
    files = pending_files(directory)
    result = ReplayResult(files=len(files))
    refs = load_refs(directory)
    loaded = {path: _read_ops(path) for path in files}
    for phase in ("create", "rest"):
        for path in files:
            header, ops = loaded[path]
            stored = header.get("tracking_uri")
            uri = tracking_uri or (usable_uri(stored) if stored else None)
            if not uri:
                why = (
                    f"its tracking URI {stored} has its password masked"
                    if stored
                    else ("no tracking URI in the file")
                )
                result.errors.append(
                    f"{path}: {why}; pass --tracking-uri or set {TRACKING_URI_ENV} to the full URI"
                )
                continue
            done = _done_count(path)
            for index, op in enumerate(ops):
                is_create = op["op"] in CREATE_OPS
                if (phase == "create") != is_create:
                    continue
                if phase == "rest" and index < done:
                    continue
                if is_create and op.get("ref") in refs:
                    continue
                try:
                    created = apply(uri, op, refs)
                except Exception as exc:  # noqa: BLE001 - keep the rest for the next sync
                    result.errors.append(f"{path.name} op {index} ({op['op']}): {exc}")
                    break
                result.ops += 1
                if is_create and created is not None:
                    refs[op["ref"]] = created
                    result.runs_created += op["op"] == "create_run"
                    save_refs(directory, refs)
                if op["op"] == "log_batch":
                    result.metrics += len(op.get("metrics") or [])
                if phase == "rest":
                    _set_done(path, index + 1)
    for path in files:
        _, ops = loaded[path]
        creates_ok = all(op.get("ref") in refs for op in ops if op["op"] in CREATE_OPS)
        rest = [i for i, op in enumerate(ops) if op["op"] not in CREATE_OPS]
        if creates_ok and (not rest or _done_count(path) > rest[-1]):
            archive = directory / "replayed"
            archive.mkdir(exist_ok=True)
            path.rename(archive / path.name)  # a move within the folder, not a write
            path.with_suffix(".done").unlink(missing_ok=True)
        else:
            result.remaining_files.append(path)
    return result
