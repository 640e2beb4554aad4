"""The executor interface: a registry by name, and handles with state, done and cancel.

One base (:class:`~ablate.execution.base.Executor`) writes ``submit`` and ``submit_many``; each
backend only starts its requests. These tests pin what every caller relies on: the in-process
handle is done when ``submit`` returns, a local worker's handle goes RUNNING -> CANCELLED when
cancelled, a detached request is refused by a backend whose jobs end with the caller, and the
registry refuses duplicate and unknown names with the list of the names there are.
"""

from __future__ import annotations

import time

import pytest
from sweep_helpers import (  # noqa: F401  (fixtures)
    inline_executor,
    local_executor,
    quick_sweep,
    runs_fixture,
    store_fixture,
    worker_can_import_quick_job,
)

from ablate.execution import registry
from ablate.execution.base import AttemptRequest, Executor, JobHandle
from ablate.execution.inline import InlineExecutor
from ablate.execution.local import LocalExecutor
from ablate.execution.registry import executor_factory, executor_names, register_executor
from ablate.execution.runner_profile import parse_runner_profile
from ablate.execution.worker import EXIT_CANCELLED
from ablate.store.run_folder import write_run_files


def request_for(store, sweep, index: int = 0, **fields) -> AttemptRequest:
    """A request for run ``index`` of ``sweep``, its folder written as the sweep loop writes it."""
    run = sweep.runs[index]
    run_dir = store.layout.run_dir(sweep.name, run.spec.run_id)
    write_run_files(run_dir, run.spec.to_json(), sweep=sweep.name, axes={})
    return AttemptRequest(run.spec.run_id, sweep.name, 1, run_dir, **fields)


def wait_done(handle: JobHandle, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not handle.done():
        assert time.monotonic() < deadline, f"{handle.label} still {handle.state}"
        time.sleep(0.05)


# ----------------------------------------------------------------------------- registry
def test_registry_names_the_builtin_executors():
    assert {"inline", "local", "slurm"} <= set(executor_names())
    assert issubclass(InlineExecutor, Executor) and issubclass(LocalExecutor, Executor)


def test_registry_refuses_an_unknown_name_with_the_allowed_ones():
    with pytest.raises(KeyError, match=r"unknown executor 'lokal'; allowed: inline, local, slurm"):
        executor_factory("lokal")


def test_registry_refuses_a_name_registered_twice(monkeypatch):
    monkeypatch.setattr(registry, "_FACTORIES", dict(registry._FACTORIES))
    executor_factory("local")  # imported, hence registered
    with pytest.raises(ValueError, match=r"executor 'local' is registered already; registered:"):
        register_executor("local")(lambda profile, store, *, max_parallel=None: None)
    register_executor("mine")(lambda profile, store, *, max_parallel=None: "built")
    assert "mine" in executor_names() and executor_factory("mine")(None, None) == "built"


def test_a_profile_is_built_by_the_executor_its_name_registers(store):
    profile = parse_runner_profile({"executor": "inline"}, name="t", source="<t>")
    executor = registry.make_executor(profile, store)
    assert isinstance(executor, InlineExecutor) and executor.in_process


# ----------------------------------------------------------------------------- handles
def test_inline_handle_is_done_when_submit_returns(tmp_path, store):
    sweep = quick_sweep(tmp_path, seeds=(0, 1), steps=3)
    executor = inline_executor(store)
    handles = executor.submit_many([request_for(store, sweep, 0), request_for(store, sweep, 1)])
    assert [h.request.run_id for h in handles] == [r.spec.run_id for r in sweep.runs]
    for handle in handles:
        assert handle.done() and handle.state == "COMPLETED" and handle.label == "inline"
        assert handle.outcome().returncode == 0
        handle.cancel()  # nothing left to stop
        assert handle.state == "COMPLETED"


def test_inline_handle_of_a_failed_attempt_says_failed(tmp_path, store):
    sweep = quick_sweep(tmp_path, seeds=(0,), steps=3, fail_attempts=1)
    handle = inline_executor(store).submit(request_for(store, sweep))
    assert handle.done() and handle.state == "FAILED" and handle.outcome().returncode == 1


def test_local_handle_runs_then_is_cancelled(tmp_path, store):
    sweep = quick_sweep(tmp_path, seeds=(0,), steps=400, sleep_per_step=0.05)
    executor = local_executor(store, cpu_slots=1)
    handle = executor.submit(request_for(store, sweep))
    try:
        assert handle.label == "cpu:0" and executor.free_slots() == 0
        assert handle.state == "RUNNING" and not handle.done()
        while not handle.progress_file().exists():  # the job has started stepping
            assert handle.done() is False
            time.sleep(0.05)
        handle.cancel()
        wait_done(handle)
        assert handle.state == "CANCELLED"
        assert handle.outcome().returncode == EXIT_CANCELLED
    finally:
        executor.release(handle)
        executor.shutdown()
    assert executor.free_slots() == 1
    [record] = store.attempts_of(handle.request.run_id)
    assert record.status.value == "cancelled"


def test_local_handle_of_a_finished_worker_says_completed(tmp_path, store):
    sweep = quick_sweep(tmp_path, seeds=(0,), steps=3)
    executor = local_executor(store, cpu_slots=1)
    handle = executor.submit(request_for(store, sweep))
    wait_done(handle)
    executor.release(handle)
    assert handle.state == "COMPLETED" and handle.outcome().returncode == 0


def test_executors_whose_jobs_end_with_the_caller_refuse_detached_requests(tmp_path, store):
    sweep = quick_sweep(tmp_path, seeds=(0,), steps=3)
    for executor in (inline_executor(store), local_executor(store)):
        assert not executor.detachable
        with pytest.raises(ValueError, match="cannot run them detached"):
            executor.submit(request_for(store, sweep, detached=True))
    assert store.attempts_of(sweep.runs[0].spec.run_id) == []


def test_a_sweep_cannot_detach_from_a_local_executor(tmp_path, store):
    from ablate.orchestrate.orchestrator import run_sweep

    sweep = quick_sweep(tmp_path, seeds=(0,), steps=3)
    with pytest.raises(ValueError, match="cannot run a sweep detached"):
        run_sweep(
            sweep,
            executor=local_executor(store),
            store=store,
            detach=True,
            install_signal_handlers=False,
        )
