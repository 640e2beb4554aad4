"""Planning and the orchestrator loop, in-process (inline executor, real jobs)."""

from __future__ import annotations

import io

import pytest
from sweep_helpers import (  # noqa: F401 (fixtures used by name)
    inline_executor,
    quick_sweep,
    runs_fixture,
    store_fixture,
    sweep_file,
    worker_can_import_quick_job,
)

from ablate.execution.claims import try_claim
from ablate.orchestrate.lock import SweepLock, SweepLockedError
from ablate.orchestrate.orchestrator import run_sweep
from ablate.orchestrate.plan import RunState, make_plan
from ablate.orchestrate.progress import PlainProgress
from ablate.spec.sweep import load_sweep
from ablate.store import AttemptStatus


def statuses(store, run_id):
    return [r.status.value for r in store.attempts_of(run_id)]


def test_linear_fit_sweep_records_real_metrics_and_resumes(tmp_path, store):
    path = sweep_file(
        tmp_path,
        "lin",
        """
        base:
          job: linear-fit
          train: {steps: 60, lr: 0.1}
        grid:
          data.noise: [0.0, 0.5]
        """,
    )
    sweep = load_sweep(path)
    out = io.StringIO()
    result = run_sweep(
        sweep, executor=inline_executor(store), store=store, progress=PlainProgress(out)
    )
    assert result.exit_code == 0
    frame = store.dataframe()
    assert sorted(frame["run_id"]) == sorted(r.spec.run_id for r in sweep.runs)
    assert (frame["status"] == "success").all()
    by_noise = dict(zip(frame["axes.data.noise"], frame["metrics.eval/r2"], strict=True))
    assert by_noise[0.0] > 0.9 and by_noise[0.0] > by_noise[0.5]  # it really fitted
    assert set(frame["executor"]) == {"inline"} and set(frame["device"]) == {"cpu"}
    assert frame["git_sha"].notna().all()
    run_dir = store.root / "lin" / sweep.runs[0].spec.run_id
    assert (run_dir / "spec.json").read_text().strip() == sweep.runs[0].spec.to_json().strip()
    assert (run_dir / "metrics.jsonl").exists()
    assert "success" in out.getvalue()

    again = run_sweep(sweep, executor=inline_executor(store), store=store)
    assert again.records == [] and again.exit_code == 0
    assert make_plan(sweep, store).counts["done"] == 2


def test_failed_attempt_is_retried_within_budget(tmp_path, store):
    sweep = quick_sweep(tmp_path, seeds=(0,), fail_attempts=1)
    result = run_sweep(sweep, executor=inline_executor(store), store=store, retries=1)
    run_id = sweep.runs[0].spec.run_id
    assert statuses(store, run_id) == ["failed", "success"]
    failed = store.attempts_of(run_id)[0]
    assert failed.failure_kind.value == "error"
    assert "injected failure (attempt 1)" in failed.failure_reason
    assert "Traceback" in failed.failure_reason
    assert result.exit_code == 0


def test_budget_is_counted_across_invocations(tmp_path, store):
    sweep = quick_sweep(tmp_path, seeds=(0,), fail_attempts=3)
    run_id = sweep.runs[0].spec.run_id
    first = run_sweep(sweep, executor=inline_executor(store), store=store, retries=1)
    assert statuses(store, run_id) == ["failed", "failed"]
    assert first.exit_code == 1 and first.not_done == [run_id]
    plan = make_plan(sweep, store, retries=1)
    assert plan.entries[0].state is RunState.EXHAUSTED and not plan.entries[0].dispatch
    assert run_sweep(sweep, executor=inline_executor(store), store=store, retries=1).records == []
    assert make_plan(sweep, store, retries=2).entries[0].state is RunState.FAILED
    run_sweep(sweep, executor=inline_executor(store), store=store, retries=3)
    assert statuses(store, run_id) == ["failed", "failed", "failed", "success"]


def test_force_reruns_done_runs(tmp_path, store):
    sweep = quick_sweep(tmp_path, seeds=(0, 1))
    run_sweep(sweep, executor=inline_executor(store), store=store)
    result = run_sweep(sweep, executor=inline_executor(store), store=store, force=True)
    assert [r.attempt for r in result.records] == [2, 2]
    assert make_plan(sweep, store, force=True).to_dispatch() != []


def test_done_in_another_sweep_counts_as_done(tmp_path, store):
    one = quick_sweep(tmp_path, "one", seeds=(0, 1))
    two = quick_sweep(tmp_path, "two", seeds=(1, 2))
    run_sweep(one, executor=inline_executor(store), store=store)
    plan = make_plan(two, store)
    assert [e.state for e in plan.entries] == [RunState.DONE, RunState.NEW]
    assert plan.entries[0].history.succeeded_in == "one"
    result = run_sweep(two, executor=inline_executor(store), store=store)
    assert len(result.records) == 1 and result.records[0].sweep == "two"


def test_plan_states_new_failed_cancelled_running(tmp_path, store):
    sweep = quick_sweep(tmp_path, seeds=(0, 1, 2), fail_attempts=1)
    run_sweep(sweep, executor=inline_executor(store), store=store, retries=0)
    plan = make_plan(sweep, store, retries=0)
    assert {e.state for e in plan.entries} == {RunState.EXHAUSTED}
    assert make_plan(sweep, store, retries=1).counts == {
        "new": 0,
        "done": 0,
        "failed": 3,
        "exhausted": 0,
        "running": 0,
    }
    claim = try_claim(store.layout, sweep.runs[1].spec.run_id, sweep="elsewhere")
    try:
        plan = make_plan(sweep, store, retries=1)
        assert plan.entries[1].state is RunState.RUNNING
        assert plan.entries[1].holder["sweep"] == "elsewhere"
        assert not plan.entries[1].dispatch
    finally:
        claim.release()
    assert make_plan(sweep, store, retries=1).entries[1].state is RunState.FAILED
    with pytest.raises(ValueError, match="--retries must be >= 0"):
        make_plan(sweep, store, retries=-1)


def test_cancelled_attempts_do_not_use_the_budget(tmp_path, store):
    sweep = quick_sweep(tmp_path, seeds=(0,), steps=5)
    executor = inline_executor(store)
    executor.bind_stop(lambda: True)  # as if Ctrl-C arrived before the first step
    run_id = sweep.runs[0].spec.run_id
    from ablate.execution.base import AttemptRequest
    from ablate.store.run_folder import write_run_files

    run_dir = store.layout.run_dir("quick", run_id)
    write_run_files(run_dir, sweep.runs[0].spec.to_json(), sweep="quick", axes={})
    executor.submit(AttemptRequest(run_id, "quick", 1, run_dir))
    assert statuses(store, run_id) == ["cancelled"]
    plan = make_plan(sweep, store, retries=0)
    assert plan.entries[0].state is RunState.NEW and plan.entries[0].dispatch
    result = run_sweep(sweep, executor=inline_executor(store), store=store, retries=0)
    assert [r.attempt for r in result.records] == [2]
    assert result.records[0].metrics["steps_run"] == 5.0  # cancelled at step 0: nothing saved


def test_run_held_by_another_process_is_waited_for(tmp_path, store):
    sweep = quick_sweep(tmp_path, seeds=(0,))
    run_id = sweep.runs[0].spec.run_id
    claim = try_claim(store.layout, run_id, sweep="other")
    import threading

    threading.Timer(1.0, claim.release).start()
    out = io.StringIO()
    result = run_sweep(
        sweep, executor=inline_executor(store), store=store, progress=PlainProgress(out)
    )
    assert [r.status for r in result.records] == [AttemptStatus.SUCCESS]


def test_second_orchestrator_on_the_same_sweep_is_refused(tmp_path, store):
    sweep = quick_sweep(tmp_path, seeds=(0,))
    with (
        SweepLock(store.layout, "quick", command="ablate sweep quick.yaml"),
        pytest.raises(SweepLockedError) as info,
    ):
        run_sweep(sweep, executor=inline_executor(store), store=store)
    message = str(info.value)
    assert "sweep 'quick' is already running" in message
    assert "ablate sweep quick.yaml" in message and "pid" in message
    assert run_sweep(sweep, executor=inline_executor(store), store=store).exit_code == 0


def test_job_spec_error_is_a_failed_record(tmp_path, store):
    sweep = quick_sweep(tmp_path, seeds=(0,))
    run_id = sweep.runs[0].spec.run_id
    from ablate.execution.base import AttemptRequest
    from ablate.store.run_folder import write_run_files

    run_dir = store.layout.run_dir("quick", run_id)
    write_run_files(
        run_dir, '{"job": "quick-fit", "seed": 0, "fit": {"stepz": 1}}', sweep="quick", axes={}
    )
    inline_executor(store).submit(AttemptRequest(run_id, "quick", 1, run_dir))
    (record,) = store.attempts_of(run_id)
    assert record.status is AttemptStatus.FAILED and record.failure_kind.value == "spec"
    assert "stepz" in record.failure_reason
