"""What the store's caches know about each record file, and when a file must be read again.

The store keeps two caches of the records it has verified (``summary.tsv`` for planning,
``index.parquet`` for the DataFrame) so that planning against 10,000 records does not read 10,000
files. A cache must never vouch for content it has not seen, so each cached row carries the
file's stamp (size, mtime and ctime in nanoseconds) and the record's checksum: a file whose stamp
differs from the cached one (edited, truncated, replaced, even with its mtime put back: no user
call sets the ctime) is read and verified again, and a file that no longer verifies is reported and
ignored like any corrupt record. One ``stat`` per file (from one directory listing) is the whole
price of a warm read.

This module holds the stamps, the rule for what to re-read, and the plain-text summary cache.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from ablate.store.files import write_atomic
from ablate.store.record import RECORD_NAME

SUMMARY_HEADER = (
    "#ablate-summary-v3\tfile\tsize\tmtime_ns\tctime_ns\tchecksum"
    "\tvalid\trun_id\tattempt\tstatus\tsweep\tfailure_kind\terror"
)


class FileStamp(NamedTuple):
    """What ``stat`` says of a record file; any change means its content must be verified again."""

    size: int
    mtime_ns: int
    ctime_ns: int


class SummaryRow(NamedTuple):
    """One record file as the planning cache remembers it.

    Attributes:
        file: the record's file name.
        stamp: the file's stamp when its content was verified.
        checksum: the checksum of the verified content (empty when it did not verify).
        valid: whether the content verified (checksum, fields, agreement with the name).
        run_id: the run id (from the name when invalid).
        attempt: the attempt number.
        status: ``success``, ``failed`` or ``cancelled``.
        sweep: the sweep that wrote it (empty if unknown).
        failure_kind: why a failed attempt failed (empty otherwise): planning keeps config
            failures out of the retry budget.
        error: why it did not verify (one line; empty when valid).
    """

    file: str
    stamp: FileStamp
    checksum: str
    valid: bool
    run_id: str
    attempt: int
    status: str
    sweep: str
    failure_kind: str
    error: str


def stamp_files(records_dir: Path) -> dict[str, FileStamp]:
    """The stamp of every visible file in ``records_dir``, by name, from one listing.

    Hidden (temporary) files are left out, and a file removed while the folder is listed;
    :func:`files_to_refresh` leaves out names that are not record names.
    """
    stamps: dict[str, FileStamp] = {}
    try:
        with os.scandir(records_dir) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue
                stamps[entry.name] = FileStamp(st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    except FileNotFoundError:
        pass
    return stamps


def files_to_refresh(
    cached: Mapping[str, FileStamp], current: Mapping[str, FileStamp]
) -> tuple[list[str], set[str]]:
    """Which record files a cache must read, and which of its rows it must drop.

    Args:
        cached: the stamps the cache recorded, by file name.
        current: the stamps on disk now (:func:`stamp_files`).

    Returns:
        ``(to_read, to_drop)``: the record files that are new or whose stamp changed (sorted),
        and the cached rows that are gone or stale (a changed file is in both).
    """
    changed = {name for name, stamp in current.items() if cached.get(name, stamp) != stamp}
    new = {name for name in current.keys() - cached.keys() if RECORD_NAME.match(name)}
    gone = cached.keys() - current.keys()
    return sorted(new | changed), gone | changed


def read_summary(path: Path) -> dict[str, SummaryRow]:
    """The planning cache's rows by file name; empty if missing, damaged or of another version."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    lines = text.split("\n")
    if lines[0] != SUMMARY_HEADER:
        return {}
    rows: dict[str, SummaryRow] = {}
    for line in lines[1:]:
        parts = line.split("\t")
        if len(parts) != 12:
            continue  # a torn line cannot happen (atomic rename); skip rather than trust
        file_name, size, mtime, ctime, checksum, valid, run_id, attempt, status, sweep = parts[:10]
        kind, error = parts[10:]
        try:
            stamp = FileStamp(int(size), int(mtime), int(ctime))
            number = int(attempt)
        except ValueError:
            continue  # an unparseable row is re-read from its record
        rows[file_name] = SummaryRow(
            file_name, stamp, checksum, valid == "1", run_id, number, status, sweep, kind, error
        )
    return rows


def write_summary(path: Path, rows: Mapping[str, SummaryRow]) -> None:
    """Replace the planning cache (atomically, not fsynced: a lost cache is rebuilt)."""
    lines = [SUMMARY_HEADER]
    for row in rows.values():
        size, mtime, ctime = row.stamp
        lines.append(
            f"{row.file}\t{size}\t{mtime}\t{ctime}\t{row.checksum}\t{int(row.valid)}"
            f"\t{row.run_id}\t{row.attempt}\t{row.status}\t{row.sweep}\t{row.failure_kind}"
            f"\t{row.error}"
        )
    # a cache (disk full, read-only store: the next read rebuilds it)
    with contextlib.suppress(OSError):
        write_atomic(path, "\n".join(lines), fsync=False)
