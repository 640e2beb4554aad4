"""MLflow tracking of real sweeps (inline executor) against a real SQLite store."""

from __future__ import annotations

import json

from mlflow import MlflowClient
from tracking_env import make_sweep

from ablate.execution.inline import InlineExecutor
from ablate.orchestrate.orchestrator import run_sweep
from ablate.tracking.mlflow_tracker import MlflowTracker


def sweep_with_tracking(sweep, store, uri, **kw):
    tracker = MlflowTracker(store.root, uri, **kw)
    result = run_sweep(
        sweep,
        executor=InlineExecutor(store, device="cpu"),
        store=store,
        tracker=tracker,
        install_signal_handlers=False,
    )
    return tracker, result


def runs_of(client, experiment_id):
    return client.search_runs([experiment_id], max_results=100)


def test_three_run_sweep_gives_parent_and_three_children(tmp_path, store, sqlite_uri):
    sweep = make_sweep(tmp_path, steps=12)
    tracker, result = sweep_with_tracking(sweep, store, sqlite_uri)
    assert result.exit_code == 0
    client = MlflowClient(tracking_uri=sqlite_uri)
    exp = client.get_experiment_by_name("trk")
    runs = runs_of(client, exp.experiment_id)
    parents = [r for r in runs if r.data.tags.get("ablate.kind") == "sweep"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 3 and len(runs) == 4
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["ablate.git_sha"] == "f" * 40
    planned = {r.spec.run_id for r in sweep.runs}
    assert {c.data.tags["ablate.run_id"] for c in children} == planned
    for child in children:
        tags, params = child.data.tags, child.data.params
        assert tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.info.status == "FINISHED"
        assert tags["ablate.sweep"] == "trk" and tags["ablate.attempt"] == "1"
        assert tags["ablate.git_sha"] == "f" * 40 and tags["ablate.git_dirty"] == "true"
        assert tags["ablate.host"] and tags["ablate.gpu"] == "cpu"
        assert "ablate.version.python" in tags and "ablate.version.numpy" in tags
        assert params["job"] == "track-fit" and params["fit.steps"] == "12"
        assert params["seed"] == tags["ablate.seed"]
        # step metrics (12 steps) replayed from metrics.jsonl with log_batch, final metrics too
        history = client.get_metric_history(child.info.run_id, "train/loss")
        assert sorted(m.step for m in history) == list(range(12))
        assert child.data.metrics["test/Avg"] > 0
        arts = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {"spec.json", "accuracy.md", "predictions_test.jsonl"} <= arts
        assert "adapter" not in arts  # opt-in
        link = json.loads((store.root / "trk" / tags["ablate.run_id"] / "mlflow.json").read_text())
        assert link["run_id"] == child.info.run_id
    assert not (store.root / ".tracking-spool").exists()


def test_retried_run_keeps_its_mlflow_run(tmp_path, store, sqlite_uri):
    sweep = make_sweep(tmp_path, seeds=(0,), fail_attempts=1)
    tracker = MlflowTracker(store.root, sqlite_uri)
    result = run_sweep(
        sweep,
        executor=InlineExecutor(store, device="cpu"),
        store=store,
        tracker=tracker,
        retries=1,
        install_signal_handlers=False,
    )
    assert result.exit_code == 0
    run_id = sweep.runs[0].spec.run_id
    assert [r.status.value for r in store.attempts_of(run_id)] == ["failed", "success"]
    client = MlflowClient(tracking_uri=sqlite_uri)
    exp = client.get_experiment_by_name("trk")
    children = [r for r in runs_of(client, exp.experiment_id) if "ablate.run_id" in r.data.tags]
    assert len(children) == 1
    child = children[0]
    assert child.data.tags["ablate.attempt"] == "2" and child.info.status == "FINISHED"
    # both attempts' steps went into the same run
    assert len(client.get_metric_history(child.info.run_id, "train/loss")) == 20

    # a second invocation (a forced rerun) finds the same child again
    tracker2 = MlflowTracker(store.root, sqlite_uri)
    run_sweep(
        sweep,
        executor=InlineExecutor(store, device="cpu"),
        store=store,
        tracker=tracker2,
        force=True,
        install_signal_handlers=False,
    )
    runs = runs_of(client, exp.experiment_id)
    assert len([r for r in runs if "ablate.run_id" in r.data.tags]) == 1
    assert len([r for r in runs if r.data.tags.get("ablate.kind") == "sweep"]) == 2
    assert client.get_run(child.info.run_id).data.tags["ablate.attempt"] == "3"


def test_failed_attempt_is_marked_failed_with_reason(tmp_path, store, sqlite_uri):
    sweep = make_sweep(tmp_path, seeds=(0,), fail_attempts=5)
    tracker = MlflowTracker(store.root, sqlite_uri)
    run_sweep(
        sweep,
        executor=InlineExecutor(store, device="cpu"),
        store=store,
        tracker=tracker,
        retries=0,
        install_signal_handlers=False,
    )
    client = MlflowClient(tracking_uri=sqlite_uri)
    exp = client.get_experiment_by_name("trk")
    [child] = [r for r in runs_of(client, exp.experiment_id) if "ablate.run_id" in r.data.tags]
    assert child.info.status == "FAILED"
    assert child.data.tags["ablate.failure_kind"] == "error"
    assert "injected failure" in child.data.tags["ablate.failure_reason"]


def test_adapter_weights_are_opt_in(tmp_path, store, sqlite_uri):
    sweep = make_sweep(tmp_path, seeds=(0,))
    run_dir = store.root / "trk" / sweep.runs[0].spec.run_id
    run_dir.mkdir(parents=True)
    (run_dir / "adapter.safetensors").write_bytes(b"weights")
    sweep_with_tracking(sweep, store, sqlite_uri, log_adapter=True)
    client = MlflowClient(tracking_uri=sqlite_uri)
    exp = client.get_experiment_by_name("trk")
    [child] = [r for r in runs_of(client, exp.experiment_id) if "ablate.run_id" in r.data.tags]
    assert [a.path for a in client.list_artifacts(child.info.run_id, "adapter")] == [
        "adapter/adapter.safetensors"
    ]


def test_tiny_scale_gets_its_own_experiment(tmp_path, store, sqlite_uri):
    sweep = make_sweep(tmp_path, seeds=(0,), scale="tiny")
    sweep_with_tracking(sweep, store, sqlite_uri)
    client = MlflowClient(tracking_uri=sqlite_uri)
    assert client.get_experiment_by_name("trk") is None
    exp = client.get_experiment_by_name("trk@tiny")
    runs = client.search_runs([exp.experiment_id])
    parent = next(r for r in runs if r.data.tags.get("ablate.kind") == "sweep")
    child = next(r for r in runs if "ablate.run_id" in r.data.tags)
    assert parent.data.tags["ablate.scale"] == "tiny"
    assert child.data.params["fit.steps"] == "3" and child.data.tags["ablate.tiny"] == "false"
