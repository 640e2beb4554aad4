"""The results store: one record file per attempt, read back as a table.

The store is the source of truth for reports. Writers (workers, the orchestrator) only ever add
files, atomically; nothing is rewritten in place, so several processes can write at once without
locks. Readers keep a parquet index of the records they have already verified and read only the
files that appeared or changed since (by size, mtime and ctime: ``record_cache.py``), which keeps
planning against tens of thousands of records well under a second. Two indexes are kept, each
refreshed on its own: a plain-text summary (run id, attempt, status, sweep) that planning reads
without importing pyarrow, and a parquet index of everything for the DataFrame. A record that
fails its checksum, even one damaged after it was indexed, is reported with a warning and never
used as a result.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ablate.store.files import write_atomic_with
from ablate.store.layout import RunsLayout
from ablate.store.record import (
    AttemptRecord,
    AttemptStatus,
    CorruptRecordError,
    RecordName,
)
from ablate.store.record_cache import (
    FileStamp,
    SummaryRow,
    files_to_refresh,
    read_summary,
    stamp_files,
    write_summary,
)

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

INDEX_VERSION = 2

# Index columns, in order. JSON-valued fields are stored as text.
_SCALAR_COLUMNS = (
    "run_id",
    "sweep",
    "attempt",
    "status",
    "failure_kind",
    "failure_reason",
    "job",
    "seed",
    "started_at",
    "ended_at",
    "git_sha",
    "git_dirty",
    "host",
    "device",
    "executor",
    "run_dir",
    "record_id",
)
_JSON_COLUMNS = ("axes", "metrics", "spec", "versions")
# What the index knows of the file each row came from (see ablate/store/record_cache.py).
_STAMP_COLUMNS = FileStamp._fields
_CACHE_COLUMNS = ("file", "valid", "error", *_STAMP_COLUMNS, "checksum")


class CorruptRecordWarning(UserWarning):
    """A record file was ignored because it cannot be trusted."""


@dataclass(frozen=True)
class AttemptSummary:
    """The few fields planning needs about one attempt."""

    run_id: str
    attempt: int
    status: AttemptStatus
    sweep: str | None


class ResultsStore:
    """Append-only store of attempt records under ``<runs root>/.store``.

    Args:
        root: the runs root (``./runs`` by default); the store lives in ``root/.store``.
    """

    def __init__(self, root: Path | str) -> None:
        self.layout = RunsLayout(Path(root))
        self._warned: set[str] = set()

    @property
    def root(self) -> Path:
        """The runs root this store belongs to."""
        return self.layout.root

    # ----------------------------------------------------------------------------- writing
    def write(self, record: AttemptRecord) -> Path:
        """Add one attempt record (atomic); returns the file written."""
        return record.write(self.layout.records_dir)

    # ----------------------------------------------------------------------------- reading
    def record_names(self) -> list[RecordName]:
        """Parsed names of all record files (no content read, not verified)."""
        return [name for name in map(RecordName.parse, self._list_files()) if name is not None]

    def attempts_of(self, run_id: str) -> list[AttemptRecord]:
        """The verified records of one run, by attempt (reads only that run's files)."""
        records = []
        for file_name in self._list_files():
            parsed = RecordName.parse(file_name)
            if parsed is None or parsed.run_id != run_id:
                continue
            record = self._read_verified(self.layout.records_dir / file_name)
            if record is not None:
                records.append(record)
        return sorted(records, key=lambda r: (r.attempt, r.ended_at or 0.0))

    def has_attempt(self, run_id: str, attempt: int) -> bool:
        """Whether a verified record exists for ``(run_id, attempt)``."""
        return any(r.attempt == attempt for r in self.attempts_of(run_id))

    def next_attempt(self, run_id: str) -> int:
        """The attempt number the next attempt of ``run_id`` gets (1 + highest recorded)."""
        return self.highest_attempts().get(run_id, 0) + 1

    def highest_attempts(self) -> dict[str, int]:
        """The highest recorded attempt of every run id, from one listing of the record names.

        For loops over many runs (SLURM submission and follow-up): one directory listing
        instead of one per run.
        """
        highest: dict[str, int] = {}
        for name in self.record_names():
            highest[name.run_id] = max(highest.get(name.run_id, 0), name.attempt)
        return highest

    def summaries(self) -> list[AttemptSummary]:
        """Run id, attempt, status and sweep of every verified record (uses the index)."""
        columns = self.attempt_columns()
        status_of = {s.value: s for s in AttemptStatus}
        return [
            AttemptSummary(run_id, attempt, status_of[status], sweep)
            for run_id, attempt, status, sweep in zip(
                columns["run_id"],
                columns["attempt"],
                columns["status"],
                columns["sweep"],
                strict=True,
            )
        ]

    def attempt_columns(self) -> dict[str, list[Any]]:
        """Run id, attempt, status, sweep and failure kind of every verified record, as lists.

        The fast path for planning: a plain-text summary index refreshed with the record files
        added or changed since (read and verified once), no pyarrow.
        """
        out: dict[str, list[Any]] = {
            "run_id": [],
            "attempt": [],
            "status": [],
            "sweep": [],
            "failure_kind": [],
        }
        for row in self._summary_rows():
            if row.valid:
                out["run_id"].append(row.run_id)
                out["attempt"].append(row.attempt)
                out["status"].append(row.status)
                out["sweep"].append(row.sweep or None)
                out["failure_kind"].append(row.failure_kind or None)
        return out

    def _summary_rows(self) -> list[SummaryRow]:
        current = stamp_files(self.layout.records_dir)
        rows = read_summary(self.layout.summary_path)
        to_read, to_drop = files_to_refresh({r.file: r.stamp for r in rows.values()}, current)
        for name in to_drop:
            del rows[name]
        for name in to_read:
            rows[name] = self._summary_row(name, current[name])
        if to_read or to_drop:
            write_summary(self.layout.summary_path, rows)
        for row in rows.values():
            if not row.valid:
                self._warn_once(row.file, row.error)
        return list(rows.values())

    def _summary_row(self, file_name: str, stamp: FileStamp) -> SummaryRow:
        parsed = RecordName.parse(file_name)
        assert parsed is not None
        try:
            record, checksum = self._verified(file_name, parsed)
        except CorruptRecordError as exc:
            error = " ".join(str(exc).split())  # one line, no tabs
            return SummaryRow(
                file_name,
                stamp,
                "",
                False,
                parsed.run_id,
                parsed.attempt,
                parsed.status.value,
                "",
                "",
                error,
            )
        return SummaryRow(
            file_name,
            stamp,
            checksum,
            True,
            record.run_id,
            record.attempt,
            record.status.value,
            record.sweep or "",
            record.failure_kind.value if record.failure_kind is not None else "",
            "",
        )

    def _verified(self, file_name: str, parsed: RecordName) -> tuple[AttemptRecord, str]:
        record, checksum = AttemptRecord.read_checked(self.layout.records_dir / file_name)
        if (record.run_id, record.attempt, record.status) != (
            parsed.run_id,
            parsed.attempt,
            parsed.status,
        ):
            raise CorruptRecordError(f"{file_name}: content does not match the file name")
        return record, checksum

    def _warn_once(self, file_name: str, error: str) -> None:
        if file_name not in self._warned:
            self._warned.add(file_name)
            warnings.warn(
                f"ignoring corrupt record {self.layout.records_dir / file_name}: {error}",
                CorruptRecordWarning,
                stacklevel=4,
            )

    def records(self) -> list[AttemptRecord]:
        """Every verified record, read in full (slower than :meth:`dataframe`; for tools)."""
        out = []
        for file_name in sorted(self._list_files()):
            if RecordName.parse(file_name) is None:
                continue
            record = self._read_verified(self.layout.records_dir / file_name)
            if record is not None:
                out.append(record)
        return out

    def dataframe(self) -> pd.DataFrame:
        """All verified records as one DataFrame, one row per attempt.

        Columns: the record's scalar fields, ``duration_s``, ``axes``/``metrics``/``spec``/
        ``versions`` as dicts, and flattened ``axes.<key>`` and ``metrics.<name>`` columns for
        pivoting. ``started_at``/``ended_at`` are UTC timestamps.
        """
        import pandas as pd

        table = self.index_table()
        frame = table.to_pandas()
        frame = frame[frame["valid"]].drop(columns=list(_CACHE_COLUMNS))
        frame = frame.reset_index(drop=True)
        for column in _JSON_COLUMNS:
            frame[column] = [json.loads(text) if text else {} for text in frame[column]]
        frame["duration_s"] = frame["ended_at"] - frame["started_at"]
        for column in ("started_at", "ended_at"):
            frame[column] = pd.to_datetime(frame[column], unit="s", utc=True)
        extra: dict[str, list[Any]] = {}
        for prefix in ("axes", "metrics"):
            keys = sorted({k for d in frame[prefix] for k in d})
            for key in keys:
                extra[f"{prefix}.{key}"] = [d.get(key) for d in frame[prefix]]
        if extra:
            frame = pd.concat([frame, pd.DataFrame(extra, index=frame.index)], axis=1)
        return frame.sort_values(["run_id", "attempt"], kind="stable").reset_index(drop=True)

    # ----------------------------------------------------------------------------- index
    def index_table(self, columns: list[str] | None = None) -> pa.Table:
        """The verified index of all record files, refreshed with the files added since.

        Args:
            columns: read only these columns when the index is already up to date (planning
                needs four of them; the spec and metrics texts are the bulk of the file).
        """
        import pyarrow as pa

        current = stamp_files(self.layout.records_dir)
        known_table = self._read_index(["file", *_STAMP_COLUMNS])
        cached: dict[str, FileStamp] = {}
        if known_table is not None:
            stamps = zip(*(known_table.column(c).to_pylist() for c in _STAMP_COLUMNS), strict=True)
            files = known_table.column("file").to_pylist()
            cached = dict(zip(files, map(FileStamp._make, stamps), strict=True))
        to_read, to_drop = files_to_refresh(cached, current)
        if not to_read and not to_drop:
            table = self._read_index(columns) if known_table is not None else None
            if table is None:
                table = _index_schema().empty_table()
                if columns is not None:
                    table = table.select(columns)
            self._warn_invalid(table)
            return table
        table = self._read_index(None)
        if table is not None and to_drop:
            table = table.filter(
                pa.array([f not in to_drop for f in table.column("file").to_pylist()])
            )
        if to_read:
            rows = [self._index_row(name, current[name]) for name in to_read]
            added = pa.Table.from_pylist(rows, schema=_index_schema())
            table = added if table is None else pa.concat_tables([table, added])
        if table is None:
            table = _index_schema().empty_table()
        self._write_index(table)
        if columns is not None:
            table = table.select(columns)
        self._warn_invalid(table)
        return table

    def _index_row(self, file_name: str, stamp: FileStamp) -> dict[str, Any]:
        parsed = RecordName.parse(file_name)
        assert parsed is not None
        row: dict[str, Any] = dict.fromkeys(_index_schema().names)
        row.update(
            file=file_name,
            run_id=parsed.run_id,
            attempt=parsed.attempt,
            status=parsed.status.value,
            valid=False,
            **stamp._asdict(),
        )
        try:
            record, row["checksum"] = self._verified(file_name, parsed)
        except CorruptRecordError as exc:
            row["error"] = str(exc)
            return row
        data = record.to_dict()
        for column in _SCALAR_COLUMNS:
            row[column] = data[column]
        for column in _JSON_COLUMNS:
            row[column] = json.dumps(data[column], sort_keys=True)
        row["valid"] = True
        return row

    def _read_index(self, columns: list[str] | None) -> pa.Table | None:
        import pyarrow.parquet as pq

        path = self.layout.index_path
        if not path.exists():
            return None
        try:
            schema = pq.read_schema(path)
            meta = schema.metadata or {}
            if meta.get(b"ablate_index_version") != str(INDEX_VERSION).encode():
                return None
            if schema.remove_metadata() != _index_schema().remove_metadata():
                return None
            return pq.read_table(path, columns=columns)
        except Exception:  # noqa: BLE001 - a damaged index is rebuilt from the records
            return None

    def _write_index(self, table: pa.Table) -> None:
        import pyarrow.parquet as pq

        path = self.layout.index_path
        path.parent.mkdir(parents=True, exist_ok=True)
        table = table.replace_schema_metadata(_index_schema().metadata)
        # a cache (disk full, read-only store: the next read rebuilds it), so not fsynced
        with contextlib.suppress(OSError):
            write_atomic_with(
                path, lambda tmp: pq.write_table(table, tmp), fsync=False, fsync_dir=False
            )

    def _warn_invalid(self, table: pa.Table) -> None:
        valid = table.column("valid").to_pylist()
        if all(valid):
            return
        if "file" not in table.column_names or "error" not in table.column_names:
            table = self._read_index(["valid", "file", "error"])
            if table is None:
                return
            valid = table.column("valid").to_pylist()
        files = table.column("file").to_pylist()
        errors = table.column("error").to_pylist()
        for ok, file_name, error in zip(valid, files, errors, strict=True):
            if not ok:
                self._warn_once(file_name, error)

    def _read_verified(self, path: Path) -> AttemptRecord | None:
        try:
            return AttemptRecord.read(path)
        except CorruptRecordError as exc:
            if path.name not in self._warned:
                self._warned.add(path.name)
                warnings.warn(
                    f"ignoring corrupt record {path}: {exc}", CorruptRecordWarning, stacklevel=3
                )
            return None

    def _list_files(self) -> Iterable[str]:
        try:
            with os.scandir(self.layout.records_dir) as entries:
                return [e.name for e in entries if not e.name.startswith(".")]
        except FileNotFoundError:
            return []


_SCHEMA_CACHE: list[Any] = []


def _index_schema() -> pa.Schema:
    if not _SCHEMA_CACHE:
        import pyarrow as pa

        schema = pa.schema(
            [
                ("file", pa.string()),
                ("valid", pa.bool_()),
                ("error", pa.string()),
                ("size", pa.int64()),
                ("mtime_ns", pa.int64()),
                ("ctime_ns", pa.int64()),
                ("checksum", pa.string()),
                ("run_id", pa.string()),
                ("sweep", pa.string()),
                ("attempt", pa.int64()),
                ("status", pa.string()),
                ("failure_kind", pa.string()),
                ("failure_reason", pa.string()),
                ("job", pa.string()),
                ("seed", pa.int64()),
                ("started_at", pa.float64()),
                ("ended_at", pa.float64()),
                ("git_sha", pa.string()),
                ("git_dirty", pa.bool_()),
                ("host", pa.string()),
                ("device", pa.string()),
                ("executor", pa.string()),
                ("run_dir", pa.string()),
                ("record_id", pa.string()),
                ("axes", pa.string()),
                ("metrics", pa.string()),
                ("spec", pa.string()),
                ("versions", pa.string()),
            ],
            metadata={"ablate_index_version": str(INDEX_VERSION)},
        )
        _SCHEMA_CACHE.append(schema)
    return _SCHEMA_CACHE[0]
