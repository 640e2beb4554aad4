"""One attempt of one run, as written to the results store.

A record is immutable and self-checking: its JSON holds a sha256 checksum over its own content, so
a truncated or hand-edited file is detected and ignored instead of being read as a result. The
file name repeats the run id, attempt and status so that planning can see what exists from a
directory listing alone.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any

from ablate.json_input import JsonInputError, parse_json
from ablate.store.files import write_atomic

SCHEMA_VERSION = 1


class AttemptStatus(str, Enum):
    """How an attempt ended. Only ``success`` makes a run done."""

    SUCCESS = "success"
    FAILED = "failed"
    CANCELLED = "cancelled"


class FailureKind(str, Enum):
    """Why an attempt did not succeed (``None`` on success)."""

    ERROR = "error"  # the job raised
    OOM = "oom"  # out of memory (CUDA or host)
    KILLED = "killed"  # the worker died without writing a record (signal, OOM killer)
    TIMEOUT = "timeout"  # ran past the runner profile's timeout
    SPEC = "spec"  # spec.json could not be read or validated
    CONFIG = "config"  # the spec's fault: data or weights not there, a setting this run cannot use
    CANCELLED = "cancelled"  # stopped on request (Ctrl-C, SIGTERM, preemption)


#: Failures that are the spec's fault: retrying the same spec cannot help, so they are never
#: retried in the sweep that saw them and never count against the retry budget (a rerun after the
#: fix runs them).
CONFIG_FAILURES = frozenset({FailureKind.SPEC, FailureKind.CONFIG})


class CorruptRecordError(ValueError):
    """A record file that cannot be trusted (truncated, bad JSON, checksum mismatch)."""


RECORD_NAME = re.compile(
    r"^(?P<run_id>[0-9a-zA-Z_]+)-(?P<attempt>\d{4,})-(?P<status>success|failed|cancelled)"
    r"-(?P<uid>[0-9a-f]{8})\.json$"
)


@dataclass(frozen=True)
class RecordName:
    """What a record's file name says (trusted only after the content is verified)."""

    run_id: str
    attempt: int
    status: AttemptStatus
    uid: str

    @classmethod
    def parse(cls, name: str) -> RecordName | None:
        """Parse a record file name; ``None`` if it is not one."""
        match = RECORD_NAME.match(name)
        if match is None:
            return None
        return cls(
            match["run_id"], int(match["attempt"]), AttemptStatus(match["status"]), match["uid"]
        )


@dataclass(frozen=True)
class AttemptRecord:
    """The outcome of one attempt of one run.

    Attributes:
        run_id: the run's id (hash of its semantic spec).
        sweep: the sweep that dispatched the attempt (run ids are shared by sweeps).
        attempt: 1-based attempt number, global for the run id.
        status: success / failed / cancelled.
        failure_kind: error / oom / killed / timeout / spec / config / cancelled; ``None`` on
            success.
        failure_reason: one line on why, plus the traceback or log tail when there is one.
        job: the job kind (``mmt``, ``linear-fit``).
        seed: the run's seed.
        axes: the sweep values that vary for this run (dotted keys).
        spec: the full nested spec, as in ``spec.json``.
        metrics: what the job returned (on failure only the micro-batch plan, if the job set one).
        started_at: start time, seconds since the epoch (UTC).
        ended_at: end time, seconds since the epoch (UTC).
        git_sha: commit of the code that ran.
        git_dirty: whether that working tree had uncommitted changes.
        versions: Python and package versions.
        host: host name.
        device: GPU name or ``cpu``.
        executor: the executor that ran it (``inline``, ``local``).
        run_dir: the run folder (logs, checkpoints).
        record_id: random id of this record (also in the file name).
        schema_version: record layout version.
    """

    run_id: str
    sweep: str
    attempt: int
    status: AttemptStatus
    job: str
    seed: int | None = None
    failure_kind: FailureKind | None = None
    failure_reason: str | None = None
    axes: dict[str, Any] = field(default_factory=dict)
    spec: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    started_at: float | None = None
    ended_at: float | None = None
    git_sha: str | None = None
    git_dirty: bool | None = None
    versions: dict[str, str] = field(default_factory=dict)
    host: str | None = None
    device: str | None = None
    executor: str | None = None
    run_dir: str | None = None
    record_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", AttemptStatus(self.status))
        if self.failure_kind is not None:
            object.__setattr__(self, "failure_kind", FailureKind(self.failure_kind))
        if self.status is AttemptStatus.SUCCESS and self.failure_kind is not None:
            raise ValueError(f"a success record has failure_kind={self.failure_kind.value!r}")
        if self.status is not AttemptStatus.SUCCESS and self.failure_kind is None:
            raise ValueError(f"a {self.status.value} record needs a failure_kind")
        if self.attempt < 1:
            raise ValueError(f"attempt must be >= 1, got {self.attempt}")

    @property
    def duration_s(self) -> float | None:
        """Wall time of the attempt in seconds."""
        if self.started_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.started_at

    @property
    def file_name(self) -> str:
        """``<run_id>-<attempt:04d>-<status>-<record_id>.json``."""
        return f"{self.run_id}-{self.attempt:04d}-{self.status.value}-{self.record_id}.json"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able content (without the checksum)."""
        # shallow copies: asdict's deep copy is the slowest part of indexing 10,000 records
        data = {name: getattr(self, name) for name in _FIELD_NAMES}
        for name in ("axes", "spec", "metrics", "versions"):
            data[name] = dict(data[name])
        data["status"] = self.status.value
        data["failure_kind"] = None if self.failure_kind is None else self.failure_kind.value
        return data

    def to_json(self) -> str:
        """The file content: the record plus a checksum over its canonical JSON."""
        data = self.to_dict()
        data["checksum"] = _checksum(data)
        return json.dumps(data, indent=1, sort_keys=True, default=_json_default) + "\n"

    @classmethod
    def from_json(cls, text: str, *, source: str = "<record>") -> AttemptRecord:
        """Parse and verify a record file's content.

        Raises:
            CorruptRecordError: not JSON, checksum missing or wrong, or fields invalid.
        """
        return cls.checked_from_json(text, source=source)[0]

    @classmethod
    def checked_from_json(cls, text: str, *, source: str = "<record>") -> tuple[AttemptRecord, str]:
        """Like :meth:`from_json`, also returning the verified checksum.

        The store's caches keep it beside the file's size and times, to tell which content they
        vouched for.

        Raises:
            CorruptRecordError: not JSON, checksum missing or wrong, or fields invalid.
        """
        try:
            data = parse_json(text, where=source, what="an attempt record")
        except JsonInputError as exc:
            raise CorruptRecordError(str(exc)) from None
        if not isinstance(data, dict) or "checksum" not in data:
            raise CorruptRecordError(f"{source}: no checksum")
        checksum = data.pop("checksum")
        if checksum != _checksum(data):
            raise CorruptRecordError(f"{source}: checksum mismatch (file edited or damaged)")
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in data.items() if k in known}), checksum
        except (TypeError, ValueError) as exc:
            raise CorruptRecordError(f"{source}: invalid fields ({exc})") from None

    @classmethod
    def read(cls, path: Path) -> AttemptRecord:
        """Read and verify a record file (raises :class:`CorruptRecordError`)."""
        return cls.read_checked(path)[0]

    @classmethod
    def read_checked(cls, path: Path) -> tuple[AttemptRecord, str]:
        """Read and verify a record file; the record and its checksum.

        Raises:
            CorruptRecordError: unreadable, or see :meth:`from_json`.
        """
        try:
            text = Path(path).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise CorruptRecordError(f"{path}: unreadable ({exc})") from None
        return cls.checked_from_json(text, source=str(path))

    def write(self, directory: Path) -> Path:
        """Write atomically into ``directory`` (:func:`~ablate.store.files.write_atomic`).

        A reader never sees a half-written record: either the final name exists with the whole
        content, or it does not exist.
        """
        return write_atomic(Path(directory) / self.file_name, self.to_json())


_FIELD_NAMES = tuple(f.name for f in fields(AttemptRecord))


def _checksum(data: dict[str, Any]) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=_json_default)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _json_default(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in a record: {value!r}")
