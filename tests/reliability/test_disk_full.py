"""Disk full while writing a result (simulated ENOSPC): the attempt is recorded failed, nothing
else is damaged, and the next sweep completes.

The fault is injected into the record writer itself (while a record is written, ``os.write``
inside :mod:`ablate.store.files` writes part of the bytes, then fails with ``ENOSPC``), so the
real atomic-write path runs: temp file, partial write, error.
"""

from __future__ import annotations

import errno
import os
import types

import pytest
from reliability_helpers import assert_records_all_verify, linear_sweep_file, record_files

import ablate.store.files as files_module
import ablate.store.record as record_module
from ablate.execution.inline import InlineExecutor
from ablate.orchestrate.orchestrator import run_sweep
from ablate.spec.sweep import load_sweep
from ablate.store import ResultsStore
from ablate.store.record import AttemptStatus, FailureKind

pytestmark = pytest.mark.usefixtures("no_git")  # tests/conftest.py


def os_with_write(write) -> types.SimpleNamespace:
    """The ``os`` module with ``write`` replaced."""
    names = [k for k in dir(os) if not k.startswith("__")]
    fake_os = types.SimpleNamespace(**{k: getattr(os, k) for k in names})
    fake_os.write = write
    return fake_os


def full_disk(monkeypatch, *, failures: int) -> list[int]:
    """Make the next ``failures`` record writes hit ENOSPC after writing half their bytes."""
    left = [failures]

    def write(fd: int, data) -> int:
        if left[0] > 0:
            left[0] -= 1
            os.write(fd, bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, "No space left on device")
        return os.write(fd, data)

    real_write_atomic = files_module.write_atomic

    def record_write_atomic(*args, **kwargs):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(files_module, "os", os_with_write(write))
            return real_write_atomic(*args, **kwargs)

    monkeypatch.setattr(record_module, "write_atomic", record_write_atomic)
    return left


def _sweep(tmp_path, name, seeds=(0, 1)):
    return load_sweep(linear_sweep_file(tmp_path, name, seeds=seeds, train={"steps": 10}))


def _run(sweep, store, retries=0):
    return run_sweep(
        sweep,
        executor=InlineExecutor(store, device="cpu"),
        store=store,
        retries=retries,
        install_signal_handlers=False,
    )


def test_result_that_cannot_be_written_is_recorded_failed_and_retried(tmp_path, monkeypatch):
    store = ResultsStore(tmp_path / "runs")
    earlier = _run(_sweep(tmp_path, "before", seeds=(7,)), store)  # a finished result to protect
    assert earlier.exit_code == 0
    kept = {p.name: p.read_bytes() for p in record_files(store.root)}

    sweep = _sweep(tmp_path, "full")
    left = full_disk(monkeypatch, failures=1)
    result = _run(sweep, store, retries=0)
    assert left == [0]
    first = sweep.runs[0].spec.run_id
    [failed] = store.attempts_of(first)
    assert failed.status is AttemptStatus.FAILED and failed.failure_kind is FailureKind.ERROR
    assert "No space left on device" in failed.failure_reason
    assert "could not be written" in failed.failure_reason
    assert result.exit_code == 1  # the run without a result is not done
    # nothing else damaged: earlier records byte for byte, every record verifies, no temp files
    for name, content in kept.items():
        assert (store.root / ".store" / "records" / name).read_bytes() == content
    assert_records_all_verify(store.root)
    assert not [p for p in record_files(store.root) if p.name.endswith(".tmp")]
    # space again: the next sweep completes and the run succeeds on its retry
    monkeypatch.undo()
    assert _run(sweep, store, retries=1).exit_code == 0
    statuses = [r.status for r in sorted(store.attempts_of(first), key=lambda r: r.attempt)]
    assert statuses == [AttemptStatus.FAILED, AttemptStatus.SUCCESS]


def test_partial_record_is_never_left_behind(tmp_path, monkeypatch):
    """A write that fails half-way leaves no record and no temp file, and raises."""
    store = ResultsStore(tmp_path / "runs")
    _run(_sweep(tmp_path, "ok", seeds=(0,)), store)
    [record] = store.records()
    full_disk(monkeypatch, failures=1)
    with pytest.raises(OSError) as err:
        store.write(record)
    assert err.value.errno == errno.ENOSPC
    assert len(record_files(store.root)) == 1  # the original only
    assert len(ResultsStore(store.root).records()) == 1


def test_store_reads_and_plans_when_its_caches_cannot_be_written(tmp_path, monkeypatch):
    """The summary and parquet index are caches: a full disk must not stop planning or reading."""
    store = ResultsStore(tmp_path / "runs")
    sweep = _sweep(tmp_path, "cache")
    assert _run(sweep, store).exit_code == 0
    for cache in (store.layout.summary_path, store.layout.index_path):
        cache.unlink(missing_ok=True)

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files_module, "os", os_with_write(no_space))
    monkeypatch.setattr("pyarrow.parquet.write_table", no_space)
    fresh = ResultsStore(store.root)
    assert len(fresh.records()) == 2
    assert len(fresh.dataframe()) == 2
    from ablate.orchestrate.plan import make_plan

    plan = make_plan(sweep, fresh)
    assert {e.state.value for e in plan.entries} == {"done"}


def full_disk_for_checkpoints(monkeypatch, failures: int = 1) -> list[int]:
    """Make the next ``failures`` checkpoint writes hit ENOSPC after writing half their bytes."""
    import ablate.store.run_folder as run_folder_module

    left = [failures]

    def write(fd: int, data) -> int:
        if left[0] > 0:
            left[0] -= 1
            os.write(fd, bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, "No space left on device")
        return os.write(fd, data)

    real = files_module.write_atomic_in_order

    def checkpoint_write(*args, **kwargs):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(files_module, "os", os_with_write(write))
            return real(*args, **kwargs)

    monkeypatch.setattr(run_folder_module, "write_atomic_in_order", checkpoint_write)
    return left


def test_disk_full_while_writing_a_checkpoint_is_a_clear_failure(tmp_path, monkeypatch):
    """ENOSPC in the middle of a checkpoint: recorded failed (not cancelled), naming the disk and
    the file; no temporary file is left; with space again the retry completes."""
    store = ResultsStore(tmp_path / "runs")
    sweep = load_sweep(
        linear_sweep_file(tmp_path, "ckfull", train={"steps": 20, "checkpoint_every": 5})
    )
    left = full_disk_for_checkpoints(monkeypatch)
    result = _run(sweep, store, retries=0)
    assert left == [0] and result.exit_code == 1
    run_id = sweep.runs[0].spec.run_id
    [failed] = store.attempts_of(run_id)
    assert failed.status is AttemptStatus.FAILED, failed.failure_reason
    assert failed.failure_kind is FailureKind.ERROR
    run_dir = store.layout.run_dir("ckfull", run_id)
    first_line = failed.failure_reason.splitlines()[0]
    assert first_line.startswith("disk full"), failed.failure_reason
    assert str(run_dir / "checkpoint.pt") in first_line
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.undo()
    assert _run(sweep, store, retries=1).exit_code == 0


def test_disk_full_while_checkpointing_on_a_stop_request_is_a_failure_too(tmp_path, monkeypatch):
    """The stop-time checkpoint is lost: recorded failed (disk full), not cancelled."""
    from ablate.execution.attempt import run_attempt
    from ablate.store.run_folder import write_run_files

    store = ResultsStore(tmp_path / "runs")
    sweep = _sweep(tmp_path, "stopfull", seeds=(0,))
    run = sweep.runs[0]
    run_dir = store.layout.run_dir("stopfull", run.spec.run_id)
    write_run_files(run_dir, run.spec.to_json(), sweep="stopfull", axes=run.axes)
    left = full_disk_for_checkpoints(monkeypatch)
    record = run_attempt(run_dir, 1, store=store, executor="inline", stop_flag=lambda: True)
    assert left == [0]
    assert record.status is AttemptStatus.FAILED, record.failure_reason
    assert record.failure_reason.startswith(
        f"disk full (No space left on device) while writing {run_dir}"
    )
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]
