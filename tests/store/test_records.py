"""Attempt records: atomic writes, checksums, file names, the DataFrame view, the index."""

from __future__ import annotations

import json
import os
import time
import warnings

import pytest

from ablate.store import (
    AttemptRecord,
    AttemptStatus,
    CorruptRecordError,
    CorruptRecordWarning,
    FailureKind,
    ResultsStore,
)
from ablate.store.record import RecordName


def make_record(run_id="a1b2c3d4e5f6", attempt=1, status="success", **kw) -> AttemptRecord:
    now = time.time()
    defaults = dict(
        run_id=run_id,
        sweep="table2",
        attempt=attempt,
        status=status,
        job="linear-fit",
        seed=0,
        axes={"adapter.dim": 16, "seed": 0},
        spec={"job": "linear-fit", "seed": 0},
        metrics={"acc": 0.9} if status == "success" else {},
        started_at=now - 5,
        ended_at=now,
        host="h",
        device="cpu",
        executor="inline",
    )
    if status != "success":
        defaults["failure_kind"] = "cancelled" if status == "cancelled" else "error"
        defaults["failure_reason"] = "boom"
    defaults.update(kw)
    return AttemptRecord(**defaults)


def test_record_round_trips_and_names_itself(tmp_path):
    record = make_record(metrics={"acc": 0.25, "loss": 1e-3})
    path = record.write(tmp_path)
    assert path.name == f"a1b2c3d4e5f6-0001-success-{record.record_id}.json"
    assert AttemptRecord.read(path) == record
    assert RecordName.parse(path.name) == RecordName(
        "a1b2c3d4e5f6", 1, AttemptStatus.SUCCESS, record.record_id
    )
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_status_and_failure_kind_must_agree():
    with pytest.raises(ValueError, match="needs a failure_kind"):
        make_record(status="failed", failure_kind=None)
    with pytest.raises(ValueError, match="success record"):
        make_record(failure_kind="error")
    with pytest.raises(ValueError):
        make_record(status="exploded")


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda text: text[: len(text) // 2], "not valid JSON"),
        (lambda text: text.replace('"acc": 0.9', '"acc": 0.95'), "checksum mismatch"),
        (
            lambda text: json.dumps({k: v for k, v in json.loads(text).items() if k != "checksum"}),
            "no checksum",
        ),
        (lambda text: "", "not valid JSON"),
    ],
)
def test_damaged_records_are_detected(tmp_path, damage, message):
    path = make_record().write(tmp_path)
    path.write_text(damage(path.read_text()))
    with pytest.raises(CorruptRecordError, match=message):
        AttemptRecord.read(path)


def test_dataframe_keeps_statuses_apart_and_flattens(tmp_path):
    store = ResultsStore(tmp_path)
    store.write(make_record("aaaaaaaaaaaa", 1, "failed"))
    store.write(make_record("aaaaaaaaaaaa", 2, "success", metrics={"acc": 0.5}))
    store.write(make_record("bbbbbbbbbbbb", 1, "cancelled"))
    frame = store.dataframe()
    assert list(frame["status"]) == ["failed", "success", "cancelled"]
    assert list(frame["attempt"]) == [1, 2, 1]
    assert frame.loc[1, "metrics.acc"] == 0.5
    assert frame.loc[0, "failure_kind"] == "error"
    assert frame.loc[2, "failure_kind"] == "cancelled"
    assert frame.loc[0, "axes.adapter.dim"] == 16
    assert frame["duration_s"].round().tolist() == [5.0, 5.0, 5.0]
    assert str(frame["started_at"].dt.tz) == "UTC"
    assert frame.loc[1, "spec"] == {"job": "linear-fit", "seed": 0}


def test_empty_store_gives_empty_frame(tmp_path):
    frame = ResultsStore(tmp_path / "nothing").dataframe()
    assert len(frame) == 0
    assert "run_id" in frame.columns


def test_corrupt_record_is_ignored_with_a_warning(tmp_path):
    store = ResultsStore(tmp_path)
    good = store.write(make_record("aaaaaaaaaaaa"))
    bad = store.write(make_record("bbbbbbbbbbbb"))
    bad.write_text(bad.read_text()[:40])
    with pytest.warns(CorruptRecordWarning, match="bbbbbbbbbbbb"):
        frame = store.dataframe()
    assert frame["run_id"].tolist() == ["aaaaaaaaaaaa"]
    assert [s.run_id for s in store.summaries()] == ["aaaaaaaaaaaa"]
    with pytest.warns(CorruptRecordWarning):
        assert [r.run_id for r in ResultsStore(tmp_path).records()] == ["aaaaaaaaaaaa"]
    assert good.exists()


def test_record_whose_content_contradicts_its_name_is_ignored(tmp_path):
    store = ResultsStore(tmp_path)
    path = store.write(make_record("aaaaaaaaaaaa", 1, "failed"))
    os.rename(path, path.with_name(path.name.replace("failed", "success")))
    with pytest.warns(CorruptRecordWarning, match="does not match the file name"):
        assert store.summaries() == []


def test_index_reads_only_new_records(tmp_path, monkeypatch):
    store = ResultsStore(tmp_path)
    for i in range(3):
        store.write(make_record(f"{i:012d}"))
    assert len(store.summaries()) == 3
    reads = []
    original = AttemptRecord.read_checked.__func__
    monkeypatch.setattr(
        AttemptRecord,
        "read_checked",
        classmethod(lambda cls, p: reads.append(p) or original(cls, p)),
    )
    store.write(make_record("n" * 12))
    fresh = ResultsStore(tmp_path)  # a new process: only the index survives
    assert len(fresh.summaries()) == 4
    assert [p.name[:12] for p in reads] == ["n" * 12]
    assert len(fresh.dataframe()) == 4
    reads.clear()
    assert len(ResultsStore(tmp_path).dataframe()) == 4
    assert len(ResultsStore(tmp_path).summaries()) == 4
    assert reads == []  # warm: nothing read


def test_a_record_whose_stamp_changed_is_verified_again(tmp_path, monkeypatch):
    """A touched record (same content, new mtime) is re-read once and still counts."""
    store = ResultsStore(tmp_path)
    kept = store.write(make_record("aaaaaaaaaaaa"))
    touched = store.write(make_record("bbbbbbbbbbbb"))
    assert len(store.summaries()) == 2 and len(store.dataframe()) == 2
    os.utime(touched, ns=(1, 1))
    reads = []
    original = AttemptRecord.read_checked.__func__
    monkeypatch.setattr(
        AttemptRecord,
        "read_checked",
        classmethod(lambda cls, p: reads.append(p) or original(cls, p)),
    )
    fresh = ResultsStore(tmp_path)
    assert sorted(s.run_id for s in fresh.summaries()) == ["a" * 12, "b" * 12]
    assert sorted(fresh.dataframe()["run_id"]) == ["a" * 12, "b" * 12]
    assert reads == [touched, touched]  # once per cache, the untouched record never
    assert kept not in reads


def test_index_drops_deleted_records_and_survives_damage(tmp_path):
    store = ResultsStore(tmp_path)
    keep = store.write(make_record("aaaaaaaaaaaa"))
    gone = store.write(make_record("bbbbbbbbbbbb"))
    assert len(store.summaries()) == 2
    gone.unlink()
    assert [s.run_id for s in store.summaries()] == ["aaaaaaaaaaaa"]
    store.layout.index_path.write_bytes(b"not parquet")
    store.layout.summary_path.write_text("garbage\tline\n")
    assert [s.run_id for s in store.summaries()] == ["aaaaaaaaaaaa"]
    assert store.dataframe()["run_id"].tolist() == ["aaaaaaaaaaaa"]
    assert keep.exists()


def test_planning_never_imports_pyarrow(tmp_path):
    import subprocess
    import sys

    store = ResultsStore(tmp_path)
    store.write(make_record("aaaaaaaaaaaa"))
    code = (
        "import sys; from ablate.store import ResultsStore;"
        f"s = ResultsStore({str(tmp_path)!r}); assert len(s.summaries()) == 1;"
        "assert 'pyarrow' not in sys.modules and 'pandas' not in sys.modules, 'imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_next_attempt_and_attempts_of(tmp_path):
    store = ResultsStore(tmp_path)
    assert store.next_attempt("aaaaaaaaaaaa") == 1
    store.write(make_record("aaaaaaaaaaaa", 1, "failed"))
    store.write(make_record("aaaaaaaaaaaa", 2, "cancelled"))
    store.write(make_record("bbbbbbbbbbbb", 7, "success"))
    assert store.next_attempt("aaaaaaaaaaaa") == 3
    assert [r.status for r in store.attempts_of("aaaaaaaaaaaa")] == [
        AttemptStatus.FAILED,
        AttemptStatus.CANCELLED,
    ]
    assert store.has_attempt("bbbbbbbbbbbb", 7)
    assert not store.has_attempt("bbbbbbbbbbbb", 1)


def test_concurrent_temp_files_are_not_records(tmp_path):
    store = ResultsStore(tmp_path)
    store.layout.records_dir.mkdir(parents=True)
    (store.layout.records_dir / ".aaaaaaaaaaaa-0001-success-12345678.json.99.tmp").write_text("{")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert store.summaries() == []


def test_failure_kinds_cover_the_design():
    assert {k.value for k in FailureKind} >= {"error", "oom", "killed", "timeout", "cancelled"}
