"""CUDA out-of-memory (simulated on CPU): recorded as OOM, retried with half the micro-batch.

``linear-fit``'s ``debug.oom_at_step`` raises ``torch.OutOfMemoryError`` at a step while the
micro-batch is above ``debug.oom_above_micro_batch``. The worker counts the run's earlier OOM
attempts and gives the next one ``micro_batch_divisor = 2 ** n``; jobs split each batch with
``ctx.micro_batch`` (half the micro-batch, twice the accumulation: same effective batch, same run
id). Once the batch cannot be split further the attempt fails clearly, still as OOM.
"""

from __future__ import annotations

import pytest
from reliability_helpers import linear_sweep_file

from ablate.errors import BatchCannotShrink
from ablate.execution.inline import InlineExecutor
from ablate.jobs.context import JobContext
from ablate.orchestrate.orchestrator import run_sweep
from ablate.spec.sweep import load_sweep
from ablate.store import ResultsStore
from ablate.store.record import AttemptStatus, FailureKind

pytestmark = pytest.mark.usefixtures("no_git")  # tests/conftest.py


def _run(path, runs, retries):
    store = ResultsStore(runs)
    sweep = load_sweep(path)
    result = run_sweep(
        sweep,
        executor=InlineExecutor(store, device="cpu"),
        store=store,
        retries=retries,
        install_signal_handlers=False,
    )
    records = sorted(store.attempts_of(sweep.runs[0].spec.run_id), key=lambda r: r.attempt)
    return sweep, result, records


def test_oom_is_recorded_and_retried_with_half_the_micro_batch(tmp_path):
    path = linear_sweep_file(
        tmp_path,
        "oom",
        train={"batch_size": 8},
        debug={"oom_at_step": 3, "oom_above_micro_batch": 2},
    )
    sweep, result, records = _run(path, tmp_path / "runs", retries=3)
    assert result.exit_code == 0
    assert [r.status for r in records] == [AttemptStatus.FAILED] * 2 + [AttemptStatus.SUCCESS]
    assert [r.failure_kind for r in records[:2]] == [FailureKind.OOM] * 2
    assert "OutOfMemoryError" in records[0].failure_reason
    assert "a retry runs micro-batch 4 x 2" in records[0].failure_reason
    assert "a retry runs micro-batch 2 x 4" in records[1].failure_reason
    # the micro-batch plan of every attempt is recorded; the effective batch never changes
    plans = [
        (r.metrics["train/micro_batch"], r.metrics["train/accumulation_steps"]) for r in records
    ]
    assert plans == [(8.0, 1.0), (4.0, 2.0), (2.0, 4.0)]
    assert {m * a for m, a in plans} == {8.0}
    assert records[2].metrics["train/micro_batch_divisor"] == 4.0
    # same run id for every attempt, and the spec is untouched
    assert {r.run_id for r in records} == {sweep.runs[0].spec.run_id}
    assert {r.spec["train"]["batch_size"] for r in records} == {8}


def test_smaller_micro_batches_reach_the_same_fit(tmp_path):
    """Splitting a batch changes memory, not the result (same samples, mean gradient)."""
    clean = linear_sweep_file(tmp_path, "clean", train={"batch_size": 8})
    _, _, plain = _run(clean, tmp_path / "a", retries=0)
    oom = linear_sweep_file(
        tmp_path,
        "oomfit",
        train={"batch_size": 8},
        debug={"oom_at_step": 0, "oom_above_micro_batch": 2},
    )
    _, _, split = _run(oom, tmp_path / "b", retries=2)
    assert split[-1].status is AttemptStatus.SUCCESS
    assert split[-1].metrics["eval/mse"] == pytest.approx(plain[0].metrics["eval/mse"], rel=1e-4)


def test_oom_at_micro_batch_one_fails_clearly(tmp_path):
    path = linear_sweep_file(
        tmp_path, "oomstuck", train={"batch_size": 2}, debug={"oom_at_step": 1}
    )
    _, result, records = _run(path, tmp_path / "runs", retries=3)
    assert result.exit_code == 1
    assert all(r.status is AttemptStatus.FAILED for r in records)
    assert all(r.failure_kind is FailureKind.OOM for r in records)
    assert "a retry runs micro-batch 1 x 2" in records[0].failure_reason
    assert "out of memory at micro-batch 1: cannot shrink further" in records[1].failure_reason
    for later in records[2:]:
        assert "cannot shrink further" in later.failure_reason
        assert "Traceback" not in later.failure_reason.splitlines()[0]


def test_micro_batch_keeps_the_effective_batch():
    ctx = JobContext(run_dir=None, micro_batch_divisor=4)  # type: ignore[arg-type]
    assert ctx.micro_batch(16, 2) == (4, 8)
    assert ctx.batch_plan == (4, 8, 4)
    with pytest.raises(BatchCannotShrink, match="cannot shrink further"):
        JobContext(run_dir=None, micro_batch_divisor=4).micro_batch(2)  # type: ignore[arg-type]
    with pytest.raises(BatchCannotShrink):
        JobContext(run_dir=None, micro_batch_divisor=2).micro_batch(3)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------- mmt
MMT_SECTIONS = {
    "model": {"llm": "llama2-7b", "vision": "diht-vit-l14-336"},
    "adapter": {"name": "bottleneck", "dim": 16, "groups": 2},
    "data": {"synthetic": {"n_train": 16, "n_val": 4, "n_test": 4, "image_size": 32}},
    "train": {
        "epochs": 2,
        "batch_size": 4,
        "accumulation": 2,
        "lr": 1e-2,
        "lr_mode": "absolute",
        "warmup_epochs": 0.5,
        "eval_every_epoch": False,
    },
    "eval": {"max_new_tokens": 4, "batch_size": 8},
}


def test_mmt_retry_after_oom_splits_the_micro_batch_and_resumes(tmp_path, monkeypatch):
    """``mmt`` honours the divisor: OOM in epoch 2 at micro-batch 4 -> retry at 2 x 4, resumed."""
    import torch

    from ablate.execution.attempt import run_attempt
    from ablate.jobs.mmt import scale_mmt
    from ablate.jobs.mmt_recipe import MmtRecipe
    from ablate.spec.run_spec import build_run_spec
    from ablate.store.run_folder import write_run_files

    monkeypatch.setenv("ABLATE_TWIN_DIR", str(tmp_path / "twins"))
    monkeypatch.setenv("ABLATE_CACHE_DIR", str(tmp_path / "cache"))
    spec = build_run_spec({"job": "mmt", "seed": 0, **scale_mmt(MMT_SECTIONS, "tiny")})
    train_window = MmtRecipe._train_window

    def oom_in_second_epoch_above_two(self, micro_batches, window, throughput):
        if self.position.step > 0 and any(mb["layout"].n_samples > 2 for mb in micro_batches):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return train_window(self, micro_batches, window, throughput)

    monkeypatch.setattr(MmtRecipe, "_train_window", oom_in_second_epoch_above_two)
    store = ResultsStore(tmp_path / "runs")
    run_dir = store.layout.run_dir("mmt-oom", spec.run_id)
    write_run_files(run_dir, spec.to_json(), sweep="mmt-oom", axes={})
    first = run_attempt(run_dir, 1, store=store, executor="inline", device="cpu")
    assert first.status is AttemptStatus.FAILED and first.failure_kind is FailureKind.OOM
    assert "a retry runs micro-batch 2 x 4" in first.failure_reason
    second = run_attempt(run_dir, 2, store=store, executor="inline", device="cpu")
    assert second.status is AttemptStatus.SUCCESS, second.failure_reason
    assert second.metrics["train/micro_batch"] == 2.0
    assert second.metrics["train/accumulation_steps"] == 4.0
    assert second.metrics["train/effective_batch"] == 8.0  # the same effective batch
    assert second.metrics["train/resumed_from_step"] > 0  # from the epoch-1 checkpoint
    assert second.spec == first.spec and second.run_id == first.run_id
