"""The mmt recipe end to end on tiny twins: determinism, resume, what a step may change."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from ablate.errors import JobCancelled
from ablate.jobs.mmt_recipe import MmtRecipe, run_mmt


def _semantic(metrics: dict[str, float]) -> dict[str, float]:
    """Metrics without wall times and throughput (which vary run to run)."""
    return {k: v for k, v in metrics.items() if not k.startswith(("time/", "speed/"))}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_spec, make_ctx):
    """One uninterrupted small run (seed 0), shared by the determinism and resume tests."""
    run_dir = tmp_path_factory.mktemp("reference")
    metrics = run_mmt(tiny_spec(), make_ctx(run_dir))
    return run_dir, metrics


@pytest.fixture
def spec(tiny_spec):
    return tiny_spec()


def test_run_writes_metrics_predictions_and_adapter(reference, spec):
    run_dir, metrics = reference
    for key in (
        "test/Avg",
        "test/NAT",
        "test/IMG",
        "test/NO",
        "test/G1-6",
        "test/unparseable",
        "val/Avg",
        "train/loss",
        "train/effective_lr",
        "train/effective_batch",
        "speed/samples_per_s",
        "speed/gpu_hours",
        "train/trainable_params",
        "data/truncated",
    ):
        assert key in metrics, key
    assert metrics["train/effective_batch"] == 8
    assert metrics["train/effective_lr"] == pytest.approx(1e-2)
    assert 0.0 <= metrics["test/Avg"] <= 100.0
    assert math.isfinite(metrics["train/loss"])
    hours = (metrics["time/train_s"] + metrics["time/eval_s"]) / 3600
    assert metrics["speed/gpu_hours"] == pytest.approx(hours)
    rows = [
        json.loads(line) for line in (run_dir / "predictions_test.jsonl").read_text().splitlines()
    ]
    assert len(rows) == 12
    assert set(rows[0]) >= {"pid", "pred", "raw", "parsed", "correct"}
    from ablate.data.scienceqa import resolve_dataset_root
    from ablate.evaluation.predictions import score_predictions_file

    data_root = resolve_dataset_root(spec.config.data)
    report = score_predictions_file(run_dir / "predictions_test.jsonl", data_root, "test")
    assert report.columns["Avg"] == pytest.approx(metrics["test/Avg"])
    assert sum(r["correct"] for r in rows) == pytest.approx(metrics["test/Avg"] * 12 / 100)
    adapter = load_file(str(run_dir / "adapter.safetensors"))
    assert sum(t.numel() for t in adapter.values()) == metrics["train/trainable_params"]
    with safe_open(str(run_dir / "adapter.safetensors"), "pt") as handle:  # what it was trained on
        built = json.loads(handle.metadata()["model"])
    assert built["llm"] == spec.config.model.llm and built["adapter"] == spec.config.adapter.name
    assert built["trainable_params"] == metrics["train/trainable_params"] and built["taps"]


def test_same_seed_same_metrics_bit_for_bit(reference, tmp_path, tiny_spec, make_ctx):
    _, first = reference
    second = run_mmt(tiny_spec(), make_ctx(tmp_path))
    assert _semantic(second) == _semantic(first)


def test_different_seed_differs(reference, tmp_path, tiny_spec, make_ctx):
    _, first = reference
    other = run_mmt(tiny_spec(seed=1), make_ctx(tmp_path))
    assert other["train/loss"] != first["train/loss"]


def test_resume_after_stop_equals_uninterrupted_run(reference, tmp_path, tiny_spec, make_ctx):
    ref_dir, ref_metrics = reference
    spec = tiny_spec()
    # 32 samples / batch 4 = 8 micro-batches = 4 optimiser steps per epoch; stop after step 3
    # (mid-epoch 0): a checkpoint mid-epoch, then resume in a new attempt.
    with pytest.raises(JobCancelled):
        run_mmt(spec, make_ctx(tmp_path, stop_after=3))
    manifest = json.loads((tmp_path / "checkpoint.json").read_text())
    assert (manifest["epoch"], manifest["batch_in_epoch"], manifest["step"]) == (0, 6, 3)
    assert not (tmp_path / "adapter.safetensors").exists()
    resumed = run_mmt(spec, make_ctx(tmp_path, attempt=2))
    assert resumed["train/resumed_from_step"] == 3
    reference_adapter = load_file(str(ref_dir / "adapter.safetensors"))
    resumed_adapter = load_file(str(tmp_path / "adapter.safetensors"))
    assert reference_adapter.keys() == resumed_adapter.keys()
    for key, value in reference_adapter.items():
        assert torch.equal(value, resumed_adapter[key]), key
    resumed.pop("train/resumed_from_step")
    assert _semantic(resumed) == _semantic(ref_metrics)


def test_stop_during_validation_resumes_without_retraining_the_epoch(
    reference, tmp_path, tiny_spec, make_ctx
):
    """Cancelled during epoch 0's validation: the next attempt starts at that validation pass."""
    _, ref_metrics = reference
    spec = tiny_spec()
    # 4 optimiser steps in epoch 0 poll the stop flag 4 times; the 5th poll is validation's
    with pytest.raises(JobCancelled, match="evaluating val"):
        run_mmt(spec, make_ctx(tmp_path, stop_after=5))
    manifest = json.loads((tmp_path / "checkpoint.json").read_text())
    assert (manifest["epoch"], manifest["batch_in_epoch"], manifest["step"]) == (0, 8, 4)
    resumed_ctx = make_ctx(tmp_path, attempt=2)
    trained: list[int] = []
    report = resumed_ctx.report_progress

    def spy(step: int, total: int, phase: str = "train", **info: float) -> None:
        if phase == "train":
            trained.append(step)
        report(step, total, phase, **info)

    resumed_ctx.report_progress = spy
    resumed = run_mmt(spec, resumed_ctx)
    assert resumed["train/resumed_from_step"] == 4
    assert trained == [5, 6, 7, 8], "epoch 0's four steps were not run again"
    resumed.pop("train/resumed_from_step")
    assert _semantic(resumed) == _semantic(ref_metrics)


def test_first_attempt_ignores_a_stale_checkpoint(tmp_path, tiny_spec, make_ctx):
    spec = tiny_spec(train={"epochs": 1})
    with pytest.raises(JobCancelled):
        run_mmt(spec, make_ctx(tmp_path, stop_after=1))
    recipe = MmtRecipe(spec, make_ctx(tmp_path, attempt=1))
    recipe.setup()
    assert recipe.position.step == 0
    recipe = MmtRecipe(spec, make_ctx(tmp_path, attempt=2))
    recipe.setup()
    assert recipe.position.step == 1


def test_training_changes_trainable_weights_only(tmp_path, tiny_spec, make_ctx):
    spec = tiny_spec(train={"epochs": 1, "eval_every_epoch": False})
    recipe = MmtRecipe(spec, make_ctx(tmp_path))
    recipe.setup()
    trainable = {id(p) for _, p in recipe.model.trainable_named_parameters()}
    before = {n: p.detach().clone() for n, p in recipe.model.named_parameters()}
    buffers = {n: b.detach().clone() for n, b in recipe.model.named_buffers()}
    recipe.train()
    changed_trainable = 0
    for name, param in recipe.model.named_parameters():
        if id(param) in trainable:
            changed_trainable += not torch.equal(before[name], param.detach())
        else:
            assert torch.equal(before[name], param.detach()), f"frozen {name} changed"
    for name, buf in recipe.model.named_buffers():
        assert torch.equal(buffers[name], buf), f"buffer {name} changed"
    assert changed_trainable > 0
    recipe.cleanup()


def test_gradient_checkpointing_gives_the_same_weights(tmp_path, tiny_spec, make_ctx):
    states = []
    for flag in (False, True):
        spec = tiny_spec(
            train={"epochs": 1, "eval_every_epoch": False, "gradient_checkpointing": flag}
        )
        recipe = MmtRecipe(spec, make_ctx(tmp_path / str(flag)))
        recipe.setup()
        recipe.train()
        states.append(recipe.model.trainable_state_dict())
        recipe.cleanup()
    for key, value in states[0].items():
        torch.testing.assert_close(states[1][key], value, rtol=1e-5, atol=1e-6)


def test_micro_batch_and_packing_are_speed_settings(tmp_path, tiny_spec, make_ctx):
    """Same windows, same training: micro-batch 1 padded, 2 packed, 8 (the window) packed give
    the same adapter weights and epoch loss up to float error (BA has no dropout: same function);
    the record says which ran."""
    results = []
    for micro, pack in ((1, False), (2, True), (8, True)):
        spec = tiny_spec(
            model={"precision": "fp32"},
            train={"epochs": 1, "autocast": "none", "micro_batch": micro, "pack": pack,
                   "eval_every_epoch": False},
        )  # fmt: skip
        recipe = MmtRecipe(spec, make_ctx(tmp_path / f"{micro}-{pack}"))
        recipe.setup()
        recipe.train()
        assert recipe.metrics["train/micro_batch"] == micro
        assert recipe.metrics["train/packed"] == float(pack)
        if pack:
            assert recipe.metrics["speed/padding_ratio"] == 1.0
        results.append((recipe.metrics["train/loss"], recipe.model.trainable_state_dict()))
    (loss, weights), others = results[0], results[1:]
    for other_loss, other_weights in others:
        assert other_loss == pytest.approx(loss, rel=1e-5)
        for name, value in weights.items():
            # AdamW steps ~lr x sign(g) where g ~ 0: float noise moves a weight by up to ~lr/1000
            torch.testing.assert_close(other_weights[name], value, rtol=1e-3, atol=1e-4)


def test_auto_micro_batch_fits_the_memory_model():
    from ablate.train.windows import auto_micro_batch

    def estimate(k: int) -> float:
        return 10.0 + 2.0 * k  # GiB

    assert auto_micro_batch(32, "cuda:0", estimate, free_gib=lambda: 40.0) == 12  # 2k+10 <= 34
    assert auto_micro_batch(32, "cuda:0", estimate, free_gib=lambda: 5.0) == 1  # OOM retry's job
    assert auto_micro_batch(4, "cuda:0", estimate, free_gib=lambda: 400.0) == 4  # <= the window
    assert auto_micro_batch(32, "cpu", estimate) == 8
