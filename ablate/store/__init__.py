"""The results store: one atomically written record per attempt, read back as a DataFrame."""

from ablate.store.layout import RunsLayout, default_runs_root
from ablate.store.record import AttemptRecord, AttemptStatus, CorruptRecordError, FailureKind
from ablate.store.results_store import CorruptRecordWarning, ResultsStore

__all__ = [
    "AttemptRecord",
    "AttemptStatus",
    "CorruptRecordError",
    "CorruptRecordWarning",
    "FailureKind",
    "ResultsStore",
    "RunsLayout",
    "default_runs_root",
]
