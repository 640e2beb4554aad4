"""A corrupt or truncated result record or checkpoint is detected and the run re-queued.

Unit tests elsewhere cover detection itself (``tests/store/test_records.py``: truncated record and
name/content mismatch ignored with a warning; ``tests/train/test_checkpoint.py``: a flipped byte
fails the checkpoint's SHA-256). Here the whole loop runs: damage a finished sweep, rerun it, and
only the damaged run is dispatched again and ends with a verified success.
"""

from __future__ import annotations

import json
import warnings

import pytest
from reliability_helpers import assert_records_all_verify, linear_sweep_file, record_files

from ablate.execution.inline import InlineExecutor
from ablate.orchestrate.orchestrator import plan_sweep, run_sweep
from ablate.spec.sweep import load_sweep
from ablate.store import ResultsStore
from ablate.store.record import AttemptStatus
from ablate.store.results_store import CorruptRecordWarning

pytestmark = pytest.mark.usefixtures("no_git")  # tests/conftest.py


def _run(sweep, store, retries=1):
    return run_sweep(
        sweep,
        executor=InlineExecutor(store, device="cpu"),
        store=store,
        retries=retries,
        install_signal_handlers=False,
    )


def truncate(path):
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 3])


def edit_metric(path):
    """Valid JSON, plausible content, wrong checksum: a hand-edited result."""
    data = json.loads(path.read_text())
    data["metrics"]["eval/r2"] = 0.999
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("damage", [truncate, edit_metric], ids=["truncated", "edited"])
def test_damaged_success_record_is_ignored_and_the_run_requeued(tmp_path, damage):
    store = ResultsStore(tmp_path / "runs")
    sweep = load_sweep(linear_sweep_file(tmp_path, "dmg", seeds=(0, 1, 2), train={"steps": 10}))
    assert _run(sweep, store).exit_code == 0
    victim = sweep.runs[1].spec.run_id
    [path] = [p for p in record_files(store.root) if p.name.startswith(victim)]
    damage(path)

    fresh = ResultsStore(store.root)
    with pytest.warns(CorruptRecordWarning, match=victim):
        plan = plan_sweep(sweep, fresh)
    states = {e.run_id: e.state.value for e in plan.entries}
    assert states[victim] == "new"
    assert sorted(states.values()) == ["done", "done", "new"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorruptRecordWarning)
        result = _run(sweep, fresh)
        assert result.exit_code == 0
        assert [r.run_id for r in result.records] == [victim]  # only the damaged run reran
        successes = [
            r for r in ResultsStore(store.root).records() if r.status is AttemptStatus.SUCCESS
        ]
    assert sorted(r.run_id for r in successes) == sorted(e.run_id for e in plan.entries)
    [again] = [r for r in successes if r.run_id == victim]
    assert again.metrics["eval/r2"] != 0.999


@pytest.mark.parametrize("how", ["truncated", "flipped"])
def test_corrupt_linear_fit_checkpoint_is_detected_and_the_retry_starts_over(tmp_path, how):
    store = ResultsStore(tmp_path / "runs")
    sweep = load_sweep(
        linear_sweep_file(
            tmp_path,
            "ck",
            train={"steps": 30, "checkpoint_every": 5},
            debug={"fail_at_step": 20, "fail_attempts": 1},
        )
    )
    assert _run(sweep, store, retries=0).exit_code == 1  # attempt 1 fails after checkpoints
    run_id = sweep.runs[0].spec.run_id
    ckpt = store.layout.run_dir("ck", run_id) / "checkpoint.pt"
    data = bytearray(ckpt.read_bytes())
    if how == "truncated":
        data = data[: len(data) // 2]
    else:
        for i in range(len(data) // 3, len(data) // 3 + 64):
            data[i] ^= 0xFF
    ckpt.write_bytes(bytes(data))
    assert _run(sweep, store, retries=1).exit_code == 0
    [ok] = [r for r in store.attempts_of(run_id) if r.status is AttemptStatus.SUCCESS]
    assert ok.metrics["train/steps_run"] == 30  # started over, not from a damaged state
    assert_records_all_verify(store.root)
