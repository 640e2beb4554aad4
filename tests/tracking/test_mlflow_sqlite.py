"""MLflow tracking of real sweeps (inline executor) against a real SQLite store."""

from __future__ import annotations

import json

from mlflow import MlflowClient
from tracking_env import (
    assert_finished_child,
    labelled_sweep,
    make_sweep,
    run_tracked,
    tracked_runs,
)

from ablate.report.sweep_summary import summarize_sweep
from ablate.tracking.mlflow_tracker import MlflowTracker


def sweep_with_tracking(sweep, store, uri, **kw):
    tracker = MlflowTracker(store.root, uri, **kw)
    return tracker, run_tracked(sweep, store, tracker)


def test_three_run_sweep_gives_parent_and_three_children(tmp_path, store, sqlite_uri):
    sweep = make_sweep(tmp_path, steps=12)
    tracker, result = sweep_with_tracking(sweep, store, sqlite_uri)
    assert result.exit_code == 0
    client = MlflowClient(tracking_uri=sqlite_uri)
    runs, parents, children = tracked_runs(client, "trk")
    assert len(parents) == 1 and len(children) == 3 and len(runs) == 4
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["ablate.git_sha"] == "f" * 40
    planned = {r.spec.run_id for r in sweep.runs}
    assert {c.data.tags["ablate.run_id"] for c in children} == planned
    for child in children:
        tags, params = child.data.tags, child.data.params
        # step metrics (12 steps) replayed from metrics.jsonl with log_batch, final metrics too
        assert_finished_child(client, child, parent, steps=12)
        assert tags["ablate.sweep"] == "trk" and tags["ablate.attempt"] == "1"
        assert tags["ablate.git_sha"] == "f" * 40 and tags["ablate.git_dirty"] == "true"
        assert tags["ablate.host"] and tags["ablate.gpu"] == "cpu"
        assert "ablate.version.python" in tags and "ablate.version.numpy" in tags
        assert params["job"] == "track-fit" and params["fit.steps"] == "12"
        assert params["seed"] == tags["ablate.seed"]
        assert child.data.metrics["test/Avg"] > 0
        arts = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {"spec.json", "accuracy.md", "predictions_test.jsonl"} <= arts
        assert "adapter" not in arts  # opt-in
        link = json.loads((store.root / "trk" / tags["ablate.run_id"] / "mlflow.json").read_text())
        assert link["run_id"] == child.info.run_id
    assert not (store.root / ".tracking-spool").exists()


def test_retried_run_keeps_its_mlflow_run(tmp_path, store, sqlite_uri):
    sweep = make_sweep(tmp_path, seeds=(0,), fail_attempts=1)
    result = run_tracked(sweep, store, MlflowTracker(store.root, sqlite_uri), retries=1)
    assert result.exit_code == 0
    run_id = sweep.runs[0].spec.run_id
    assert [r.status.value for r in store.attempts_of(run_id)] == ["failed", "success"]
    client = MlflowClient(tracking_uri=sqlite_uri)
    _, _, children = tracked_runs(client, "trk")
    assert len(children) == 1
    child = children[0]
    assert child.data.tags["ablate.attempt"] == "2" and child.info.status == "FINISHED"
    # both attempts' steps went into the same run
    assert len(client.get_metric_history(child.info.run_id, "train/loss")) == 20

    # a second invocation (a forced rerun) finds the same child again
    run_tracked(sweep, store, MlflowTracker(store.root, sqlite_uri), force=True)
    _, parents, children = tracked_runs(client, "trk")
    assert len(children) == 1
    assert len(parents) == 2
    assert client.get_run(child.info.run_id).data.tags["ablate.attempt"] == "3"


def test_failed_attempt_is_marked_failed_with_reason(tmp_path, store, sqlite_uri):
    sweep = make_sweep(tmp_path, seeds=(0,), fail_attempts=5)
    run_tracked(sweep, store, MlflowTracker(store.root, sqlite_uri), retries=0)
    client = MlflowClient(tracking_uri=sqlite_uri)
    _, _, [child] = tracked_runs(client, "trk")
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
    _, _, [child] = tracked_runs(client, "trk")
    assert [a.path for a in client.list_artifacts(child.info.run_id, "adapter")] == [
        "adapter/adapter.safetensors"
    ]


def test_tiny_scale_gets_its_own_experiment(tmp_path, store, sqlite_uri):
    sweep = make_sweep(tmp_path, seeds=(0,), scale="tiny")
    sweep_with_tracking(sweep, store, sqlite_uri)
    client = MlflowClient(tracking_uri=sqlite_uri)
    assert client.get_experiment_by_name("trk") is None
    _, parents, children = tracked_runs(client, "trk@tiny")
    parent, child = parents[0], children[0]
    assert parent.data.tags["ablate.scale"] == "tiny"
    assert child.data.params["fit.steps"] == "3" and child.data.tags["ablate.tiny"] == "false"


def test_the_ui_first_view_and_the_parent_summary(tmp_path, store, sqlite_uri):
    """The experiment opens as a training one with its description and a saved runs view; the
    children are named by row label; the parent carries the report table and links to them."""
    from ablate.tracking.experiment_view import SHARED_VIEW_PREFIX

    sweep = labelled_sweep(tmp_path)
    sweep_with_tracking(sweep, store, sqlite_uri, summarize=summarize_sweep)
    client = MlflowClient(tracking_uri=sqlite_uri)
    exp = client.get_experiment_by_name("lab")
    tags = exp.tags
    assert tags["mlflow.experimentKind"] == "custom_model_development"
    note = tags["mlflow.note.content"]
    assert "two rows of the numpy fit" in note and "label: short, fit.steps: 3" in note
    key = tags["ablate.view_key"]
    view = json.loads(tags[SHARED_VIEW_PREFIX + key])
    assert view["orderByKey"] == "metrics.`test/Avg`" and view["orderByAsc"] is False
    assert view["selectedColumns"][:2] == ["metrics.`test/Avg`", "metrics.`val/Avg`"]
    assert view["selectedColumns"][-2:] == ["params.`fit.steps`", "params.`seed`"]

    _, [parent], children = tracked_runs(client, "lab")
    assert sorted(c.info.run_name for c in children) == ["long", "long", "short", "short"]
    for child in children:
        assert {m.step for m in client.get_metric_history(child.info.run_id, "test/Avg")} == {0}
    data = client.get_run(parent.info.run_id).data
    assert data.metrics["runs/succeeded"] == 4 and data.metrics["runs/failed"] == 0
    top = max(c.data.metrics["test/Avg"] for c in children)
    [best] = [c for c in children if c.info.run_id == data.tags["ablate.best.mlflow_run"]]
    assert data.metrics["best/test/Avg"] == best.data.metrics["test/Avg"] == top
    assert data.tags["ablate.best.row"] == best.info.run_name
    summary = data.tags["mlflow.note.content"]
    assert "lab: test accuracy" in summary and "| short" in summary
    for child in children:  # a link to each child, in the UI's own routes
        route = f"#/experiments/{exp.experiment_id}/runs/{child.info.run_id}"
        assert f"({route}?workflowType=machine_learning)" in summary
    arts = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/lab.md", "report/lab.html", "report/lab_bars.png", "report/runs.md"} <= arts
    root = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"summary.md", "sweep", "report"} <= root
